#!/usr/bin/env bash
# Single-node KRaft Kafka from Maven Central jars: ./kafka.sh fetch|up|stop|status
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LIBS="$MEDASSIST_CACHE_DIR/kafka/$KAFKA_VERSION/libs"
DATA="$MEDASSIST_RUN_DIR/kafka/data"
CONF="$MEDASSIST_RUN_DIR/kafka/server.properties"
PIDFILE="$MEDASSIST_RUN_DIR/kafka/kafka.pid"
LOG="$MEDASSIST_RUN_DIR/logs/kafka.log"

fetch() {
  [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] && return
  command -v mvn >/dev/null || fail "mvn is needed to fetch the Kafka jars from Maven Central"
  say "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  mvn -q -B -f "$ROOT_DIR/deploy/kafka/pom.xml" -Dmaven.repo.local="$MEDASSIST_CACHE_DIR/m2" \
    -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$LIBS.partial" >"$MEDASSIST_RUN_DIR/logs/mvn.log" 2>&1 \
    || fail "fetching Kafka jars failed: see $MEDASSIST_RUN_DIR/logs/mvn.log"
  rm -rf "$LIBS" && mv "$LIBS.partial" "$LIBS"
}

kafka_java() { java $KAFKA_HEAP_OPTS -cp "$LIBS/*" "$@"; }

up() {
  fetch
  if pid_alive "$PIDFILE"; then say "Kafka already running on $KAFKA_BOOTSTRAP_SERVERS"; return; fi
  port_open "$KAFKA_PORT" && fail "port $KAFKA_PORT is taken by another process; set KAFKA_PORT to a free port"
  port_open "$KAFKA_CONTROLLER_PORT" && fail "port $KAFKA_CONTROLLER_PORT is taken; set KAFKA_CONTROLLER_PORT"
  mkdir -p "$DATA"
  sed -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
      -e "s#@DATA_DIR@#$DATA#g" -e "s#@PARTITIONS@#$KAFKA_PARTITIONS#g" \
      "$ROOT_DIR/deploy/kafka/server.properties.template" > "$CONF"
  if [ ! -f "$DATA/meta.properties" ]; then
    local cluster_id; cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    say "formatting KRaft storage (cluster $cluster_id)"
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$CONF" >"$MEDASSIST_RUN_DIR/logs/kafka-format.log" 2>&1 \
      || fail "formatting Kafka storage failed: see $MEDASSIST_RUN_DIR/logs/kafka-format.log"
  fi
  say "starting Kafka $KAFKA_VERSION on $KAFKA_BOOTSTRAP_SERVERS"
  nohup java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
    -Dorg.slf4j.simpleLogger.showDateTime=true -cp "$LIBS/*" kafka.Kafka "$CONF" >>"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  wait_for "Kafka" 90 port_open "$KAFKA_PORT" || { tail -n 30 "$LOG" >&2; fail "Kafka did not open $KAFKA_PORT: see $LOG"; }
}

stop() {
  if stop_process Kafka "$PIDFILE" 60; then say "Kafka stopped"; fi
}

status() {
  if pid_alive "$PIDFILE" && port_open "$KAFKA_PORT"; then
    echo "kafka        up    $KAFKA_BOOTSTRAP_SERVERS (Kafka $KAFKA_VERSION)"
  else
    echo "kafka        down"
  fi
}

"${1:-status}"
