#!/usr/bin/env bash
# The Python tools the tests and the benchmarks drive (SecantusDB, DuckDB,
# PyArrow, PySpark), from PyPI into ./.venv; reinstalled only when
# tests/requirements.txt changes. Sourced by tests/run.sh and benches/run.sh.
if ! cmp -s tests/requirements.txt .venv/requirements.installed 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt .venv/requirements.installed
fi
