#!/usr/bin/env bash
# The whole test suite from a fresh clone: formatting, lints, unit and
# integration tests. Installs what the tests need; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real servers and readers the server suite uses: SecantusDB for the
# MongoDB wire protocol, DuckDB, PyArrow and PySpark to read the lake (PyPI,
# into .venv); Apache Kafka, HDFS and Trino (Maven Central, with soundlake's
# functions for Trino built by Maven), MinIO and FerretDB (Go module proxy),
# into the servers cache outside the repository.
source tests/venv.sh
bash tests/servers/install.sh

# Debian's docker-compose validates docker-compose.yml (no engine needed).
if ! command -v docker-compose >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi

# Debian's chromium, driven by Playwright from npm (tests/ui), opens the
# web UI's pages in a real browser.
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
(cd tests/ui && npm ci --silent --no-audit --no-fund)

# `servers` adds the server suite to the tests plain `cargo test` runs;
# `failpoints` lets the crash tests pause the binary at named points
# (between a bronze publish and the Kafka offset commit, say) and kill it.
# Lints run with and without them, so both builds stay clean.
cargo fmt --all --check
cargo clippy --all-targets --locked -- -D warnings
cargo clippy --all-targets --all-features --locked -- -D warnings
# The two-process rate test times requests on the real clock (a 4 s window,
# so a slot's hold is 133 ms), so it runs alone, after the rest: tests running
# beside it delay requests between the slot and the server.
shared_limit=two_processes_share_one_limit_and_the_survivor_takes_it_all
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --features failpoints,servers --no-fail-fast \
    -E "not test($shared_limit)" || status=$?
else
  cargo test --locked --features failpoints,servers --no-fail-fast -- --skip "$shared_limit" || status=$?
fi
cargo test --locked --features failpoints,servers --test it -- "$shared_limit"
exit "$status"
