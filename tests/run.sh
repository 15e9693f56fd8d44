#!/usr/bin/env bash
# Runs the whole sealgate test suite. Usage: bash tests/run.sh
#
# Installs what the tests need (Python `cryptography` for the independent
# decoder), then: formatting and lints, the committed vectors under every
# AEAD backend, the Python interop decoder on the vectors and on random
# objects, a smoke run of the benchmarks, and finally every Rust test. The
# last lines are the test runner's summary.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies"
if ! python3 -c 'import cryptography' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'cryptography>=42'
fi
python3 -c 'import cryptography; print("python cryptography", cryptography.__version__)'

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "build"
cargo build --locked --bins
bin="${CARGO_TARGET_DIR:-target}/debug/sealgate"

step "committed vectors under the RustCrypto backend (ring runs below)"
cargo test --locked --no-default-features --features backend-rustcrypto --test vectors

step "independent Python decoder: vectors and random objects"
python3 tests/interop/decode.py --vectors tests/vectors --sample 40 --sealgate "$bin" | tail -n 3

step "benchmark smoke run (each benchmark once; no timing)"
cargo test --locked --benches -q 2>&1 | tail -n 3

step "doc tests"
cargo test --locked --doc -q

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi
