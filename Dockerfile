# sealgate container image: a multi-stage build giving a small image that
# runs as a non-root user. docs/CONTAINER.md shows `docker run` with keys/
# and config/ mounted as volumes.
#
#   docker build -t sealgate .
#
# Builder and runtime share Debian 13 (trixie), so the binary's glibc matches.

FROM rust:1.95-slim-trixie AS build
# aws-lc-rs builds its C code with cmake and a C compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
COPY tests ./tests
RUN cargo build --release --locked --bin sealgate \
 && strip target/release/sealgate \
 && install -D -m 0755 target/release/sealgate /out/sealgate

# Runtime: distroless C runtime (glibc, libgcc, CA certificates), no shell,
# no package manager; user 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian13:nonroot
COPY --from=build /out/sealgate /usr/local/bin/sealgate
# Key store and configuration are mounted, never baked in. The data folder
# holds the embedded default's ciphertext and the audit log.
ENV SEALGATE_KEYS_DIR=/etc/sealgate/keys \
    SEALGATE_LISTEN=0.0.0.0:7070 \
    SEALGATE_ADMIN_LISTEN=0.0.0.0:9090 \
    SEALGATE_LOG_JSON=true
VOLUME ["/etc/sealgate/keys", "/etc/sealgate/config", "/var/lib/sealgate"]
WORKDIR /var/lib/sealgate
USER 65532:65532
# 7070: S3 endpoint; 9090: /health/live, /health/ready, /metrics.
EXPOSE 7070 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sealgate"]
# With the configuration mounted; `docker run … sealgate serve` instead runs
# the embedded default (ciphertext in /var/lib/sealgate/data) for a try-out.
CMD ["serve", "--config", "/etc/sealgate/config/sealgate.toml", "--audit-log", "/var/lib/sealgate/audit.jsonl"]
