#!/usr/bin/env bash
# The whole test suite from a fresh clone: formatting, lints, unit and
# integration tests. Installs what the tests need; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real servers the integration tests start: SecantusDB (MongoDB wire
# protocol) from PyPI, in a local venv.
if [ ! -x .venv/bin/secantusd-py ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check SecantusDB==0.7.0b3
fi

cargo fmt --all --check
cargo clippy --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi
