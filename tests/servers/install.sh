#!/usr/bin/env bash
# Installs the real servers the integration tests and benchmarks start, into
# a cache outside the repository (SOUNDLAKE_SERVERS, default
# ~/.cache/soundlake/servers), once: safe to rerun. Prints nothing when all
# is there already.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
servers="${SOUNDLAKE_SERVERS:-$HOME/.cache/soundlake/servers}"

# Apache Kafka: the broker's jars from Maven Central, keyed by the POM's
# content so a version change installs afresh.
kafka="$servers/kafka-$(sha256sum "$here/kafka/pom.xml" | cut -c1-12)"
if [ ! -f "$kafka/installed" ]; then
  rm -rf "$kafka"
  mkdir -p "$kafka"
  mvn -q -B -Dstyle.color=never -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$kafka/libs"
  touch "$kafka/installed"
fi

# FerretDB v1 on SQLite, a MongoDB wire-protocol server: our small command
# around its embeddable package (tests/servers/ferretdb), built with Go from
# the Go module proxy; rebuilt when its source or pinned modules change.
ferret_src="$here/ferretdb"
ferret_stamp="$(cat "$ferret_src/main.go" "$ferret_src/go.mod" "$ferret_src/go.sum" | sha256sum | cut -c1-12)"
if [ "$(cat "$servers/bin/ferretdb-sqlite.stamp" 2>/dev/null)" != "$ferret_stamp" ]; then
  mkdir -p "$servers/bin"
  (cd "$ferret_src" && go build -o "$servers/bin/ferretdb-sqlite" .)
  echo "$ferret_stamp" > "$servers/bin/ferretdb-sqlite.stamp"
fi
