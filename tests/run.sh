#!/usr/bin/env bash
# The whole test suite from a fresh clone: formatting, lints, unit and
# integration tests. Installs what the tests need; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi
