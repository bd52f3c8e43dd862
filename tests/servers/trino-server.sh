#!/usr/bin/env bash
# Start a real Trino (coordinator and worker in one) on 127.0.0.1:PORT with
# its configuration and data in DIR; DIR/etc/catalog/ holds the catalogs the
# caller wrote there. Trino, its Delta Lake plugin and soundlake's functions
# come from tests/servers/install.sh. Recent Trino needs a newer Java than the
# default one: the newest JDK under /usr/lib/jvm runs it, or the java named
# by SOUNDLAKE_TRINO_JAVA. Runs in the foreground; its log ends the start-up
# with "SERVER STARTED". SOUNDLAKE_TRINO_SIZE=bench gives it a benchmark's
# memory and the full JIT.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 PORT DIR" >&2
  exit 2
fi
port=$1 dir=$2
source "$(dirname "$0")/jars.sh"
trino="$(trino_dir)"
if [ ! -f "$trino/installed" ]; then
  echo "$trino is missing: run bash tests/servers/install.sh (tests/run.sh does)" >&2
  exit 1
fi
java="$(trino_java_bin)"
functions="$(functions_dir)"
if [ ! -f "$functions/installed" ]; then
  echo "$functions is missing: run bash tests/servers/install.sh (tests/run.sh does)" >&2
  exit 1
fi
# Sized for the tests (small queries, start-up dominates: the quick JIT),
# or with SOUNDLAKE_TRINO_SIZE=bench for the benchmark's gold at 2M tracks.
if [ "${SOUNDLAKE_TRINO_SIZE:-test}" = bench ]; then
  jvm=(-Xmx12g) query_memory=8GB
else
  jvm=(-Xmx1536m -XX:TieredStopAtLevel=1) query_memory=512MB
fi
mkdir -p "$dir/etc/catalog" "$dir/plugin"
ln -sfn "$trino/plugin/delta-lake" "$dir/plugin/delta-lake"
ln -sfn "$functions/soundlake-functions" "$dir/plugin/soundlake-functions"
# One node, so no failure detector: on a stalled machine its heartbeats can
# time out and mark the only node failed, and queries fail with
# NO_NODES_AVAILABLE, as one did in CI mid-test after others had run.
cat > "$dir/etc/config.properties" <<PROPERTIES
coordinator=true
node-scheduler.include-coordinator=true
failure-detector.enabled=false
http-server.http.port=$port
discovery.uri=http://127.0.0.1:$port
node.environment=test
node.id=soundlake-test
node.internal-address=127.0.0.1
plugin.dir=$dir/plugin
catalog.config-dir=$dir/etc/catalog
query.max-memory=$query_memory
query.max-memory-per-node=$query_memory
PROPERTIES
cd "$dir"
exec "$java" "${jvm[@]}" -XX:+UseG1GC -Djdk.attach.allowAttachSelf=true \
  -Dconfig="$dir/etc/config.properties" -cp "$trino/lib/*" io.trino.server.TrinoServer
