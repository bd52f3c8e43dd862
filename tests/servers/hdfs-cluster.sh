#!/usr/bin/env bash
# Start a real HDFS (Hadoop's MiniDFSCluster: a NameNode and one DataNode in
# one JVM) with the NameNode on 127.0.0.1:PORT and its data in DIR. The jars
# come from tests/servers/install.sh. Runs in the foreground; prints
# "HDFS ready" once it serves requests.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 PORT DIR" >&2
  exit 2
fi
source "$(dirname "$0")/jars.sh"
libs="$(installed_libs hdfs)"
# A small heap and the quick JIT: a test cluster starts in seconds. Java runs
# the one-file program from source, so nothing is compiled ahead.
exec java -Xmx768m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$libs/*" \
  "$here/hdfs/MiniHdfs.java" "$1" "$2"
