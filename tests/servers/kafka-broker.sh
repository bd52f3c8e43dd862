#!/usr/bin/env bash
# Start a real Apache Kafka broker in KRaft mode (one node, broker and
# controller) on 127.0.0.1:PORT, its controller on CONTROLLER_PORT, its data
# in DIR (which it formats first). The jars come from tests/servers/install.sh.
# Runs in the foreground; its log ends the start-up with "Kafka Server started".
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 PORT CONTROLLER_PORT DIR" >&2
  exit 2
fi
port=$1 controller=$2 dir=$3
source "$(dirname "$0")/jars.sh"
libs="$(installed_libs kafka)"
mkdir -p "$dir/data"
cat > "$dir/server.properties" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Tests use short consumer sessions (the default floor is 6 s).
group.min.session.timeout.ms=1000
PROPERTIES
# A small heap and the quick JIT: a test broker starts in seconds.
java_opts=(-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$libs/*")
java "${java_opts[@]}" kafka.tools.StorageTool format -t "$(java "${java_opts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null)" \
  -c "$dir/server.properties" >/dev/null 2>&1
exec java "${java_opts[@]}" -Dorg.slf4j.simpleLogger.defaultLogLevel=info kafka.Kafka "$dir/server.properties"
