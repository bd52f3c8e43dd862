#!/usr/bin/env bash
# Installs the real servers the integration tests and benchmarks start, into
# a cache outside the repository (SOUNDLAKE_SERVERS, default
# ~/.cache/soundlake/servers), once: safe to rerun. Prints nothing when all
# is there already.
set -euo pipefail
source "$(dirname "$0")/jars.sh"

# Java servers, Apache Kafka and HDFS (a MiniDFSCluster): their jars from
# Maven Central.
for name in kafka hdfs; do
  jars="$(jars_dir "$name")"
  if [ ! -f "$jars/installed" ]; then
    rm -rf "$jars"
    mkdir -p "$jars"
    mvn -q -B -Dstyle.color=never -f "$here/$name/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$jars/libs"
    touch "$jars/installed"
  fi
done

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

# MinIO, the S3 server, built with `go install` from the Go module proxy
# (which serves its sources under a pseudo-version, MinIO tagging no Go
# module versions); rebuilt when the pinned version changes.
minio_version=v0.0.0-20260212201848-7aac2a2c5b7c
if [ "$(cat "$servers/bin/minio.stamp" 2>/dev/null)" != "$minio_version" ]; then
  mkdir -p "$servers/bin"
  GOBIN="$servers/bin" go install "github.com/minio/minio@$minio_version"
  echo "$minio_version" > "$servers/bin/minio.stamp"
fi

# Trino: its core (lib/) and the Delta Lake plugin, taken from the server
# tarball on Maven Central (checked against Maven's SHA-1); the other 54
# plugins are deleted (the tarball hard-links jars they share, so the whole
# plugin/ folder is unpacked first).
trino="$(trino_dir)"
if [ ! -f "$trino/installed" ]; then
  name="trino-server-$trino_version"
  url="https://repo1.maven.org/maven2/io/trino/trino-server/$trino_version/$name.tar.gz"
  tarball="$servers/downloads/$name.tar.gz"
  mkdir -p "$servers/downloads"
  if [ ! -f "$tarball" ]; then
    curl -fsSL --retry 3 -o "$tarball.part" "$url"
    mv "$tarball.part" "$tarball"
  fi
  echo "$(curl -fsSL --retry 3 "$url.sha1")  $tarball" | sha1sum --check --quiet
  rm -rf "$trino"
  mkdir -p "$trino"
  tar xzf "$tarball" -C "$trino" --strip-components=1 "$name/lib" "$name/plugin"
  find "$trino/plugin" -mindepth 1 -maxdepth 1 ! -name delta-lake -exec rm -rf {} +
  rm "$tarball"
  touch "$trino/installed"
fi

# soundlake's functions for Trino (surrogate_key, json_bigint, soundlake_text), built with
# Maven on the Java Trino runs on; rebuilt when their sources change.
functions="$(functions_dir)"
if [ ! -f "$functions/installed" ]; then
  java="$(trino_java_bin)"
  rm -rf "$functions"
  mkdir -p "$functions"
  JAVA_HOME="$(dirname "$(dirname "$java")")" mvn -q -B -Dstyle.color=never \
    -f "$functions_src/pom.xml" -Dsoundlake.build="$functions" package 2>&1 \
    | grep -v "WARNING:" || true
  if [ ! -f "$functions/soundlake-functions/soundlake-functions-1.jar" ]; then
    echo "building $functions_src failed" >&2
    exit 1
  fi
  touch "$functions/installed"
fi
