#!/usr/bin/env bash
# The whole test suite. Starts the services the tests need when they are absent, then runs
# every test with cargo-nextest (falls back to `cargo test` when nextest is not installed).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"

if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
