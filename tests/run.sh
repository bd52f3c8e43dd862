#!/usr/bin/env bash
# The whole test suite from a fresh clone: formatting, lints, unit and
# integration tests. Installs what the tests need; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real servers and readers the integration tests use: SecantusDB for the
# MongoDB wire protocol, moto for S3, DuckDB, PyArrow and PySpark to read
# the lake (PyPI, into .venv); Apache Kafka (Maven Central, into the servers
# cache outside the repository).
source tests/venv.sh
bash tests/servers/install.sh

# Debian's docker-compose validates docker-compose.yml (no engine needed).
if ! command -v docker-compose >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi

# `failpoints` lets the crash tests pause the binary at named points
# (between a bronze publish and the Kafka offset commit, say) and kill it.
cargo fmt --all --check
cargo clippy --all-targets --all-features --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --features failpoints --no-fail-fast
else
  cargo test --locked --features failpoints --no-fail-fast
fi
