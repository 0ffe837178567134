#!/usr/bin/env bash
# Trace viewer: the Zipkin server's executable jar from Maven Central, in memory, on loopback.
# ./zipkin.sh fetch|up|stop|status|running   (docs/decisions/0014-zipkin-trace-viewer.md)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
JAR="$MEDASSIST_CACHE_DIR/zipkin/zipkin-server-$ZIPKIN_VERSION-exec.jar"
PIDFILE="$MEDASSIST_RUN_DIR/zipkin/zipkin.pid"
LOG="$MEDASSIST_RUN_DIR/logs/zipkin.log"

fetch() {
  [ -f "$JAR" ] && return
  command -v mvn >/dev/null || fail "mvn is needed to fetch the Zipkin server from Maven Central"
  say "fetching io.zipkin:zipkin-server:$ZIPKIN_VERSION:exec (about 130 MB) from Maven Central"
  mkdir -p "$(dirname "$JAR")"
  mvn -q -B -Dmaven.repo.local="$MEDASSIST_CACHE_DIR/m2" dependency:copy \
    -Dartifact="io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:exec" -DoutputDirectory="$(dirname "$JAR")" \
    >"$MEDASSIST_RUN_DIR/logs/mvn-zipkin.log" 2>&1 \
    || fail "fetching the Zipkin server failed: see $MEDASSIST_RUN_DIR/logs/mvn-zipkin.log"
}

# running: true (and silent) when Zipkin answers; services.sh asks this to decide where traces go.
running() { pid_alive "$PIDFILE" && ready; }

ready() { "$ROOT_DIR/.venv/bin/python" -c "import sys, urllib.request
try: urllib.request.urlopen('http://127.0.0.1:$ZIPKIN_PORT/health', timeout=2)
except Exception: sys.exit(1)" 2>/dev/null; }

ready_or_dead() { ready || ! pid_alive "$PIDFILE"; }

up() {
  fetch
  if running; then say "Zipkin already running: http://127.0.0.1:$ZIPKIN_PORT/zipkin/"; return; fi
  port_open "$ZIPKIN_PORT" && fail "port $ZIPKIN_PORT is taken by another process; set ZIPKIN_PORT to a free port"
  mkdir -p "$(dirname "$PIDFILE")"
  say "starting Zipkin $ZIPKIN_VERSION (in memory, at most $ZIPKIN_MAX_SPANS spans): http://127.0.0.1:$ZIPKIN_PORT/zipkin/"
  # A clean environment: Zipkin reads KAFKA_BOOTSTRAP_SERVERS (and RABBIT_*, ...) as "collect from there",
  # and env.sh exports ours. Only the HTTP collector, on loopback; no self-tracing, no gRPC or scribe.
  nohup env -i PATH="$PATH" HOME="$MEDASSIST_RUN_DIR/zipkin" STORAGE_TYPE=mem MEM_MAX_SPANS="$ZIPKIN_MAX_SPANS" \
    java $ZIPKIN_JAVA_OPTS -jar "$JAR" \
    "--armeria.ports[0].ip=127.0.0.1" "--armeria.ports[0].port=$ZIPKIN_PORT" "--armeria.ports[0].protocols=http" \
    >>"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  wait_for "Zipkin" 120 ready_or_dead || true
  if ! ready; then tail -n 30 "$LOG" >&2; stop; fail "Zipkin did not become ready: see $LOG"; fi
  say "Zipkin ready: http://127.0.0.1:$ZIPKIN_PORT/zipkin/ ; services started from now on send their traces to it"
}

stop() {
  if stop_process Zipkin "$PIDFILE" 20; then say "Zipkin stopped (its in-memory traces are gone)"; fi
}

# status: a line only when Zipkin runs or was fetched, so `make status` stays quiet for those who never use it.
status() {
  if running; then
    echo "zipkin       up    http://127.0.0.1:$ZIPKIN_PORT/zipkin/ (Zipkin $ZIPKIN_VERSION, in memory)"
  elif [ -f "$JAR" ]; then
    echo "zipkin       down  (make traces)"
  fi
}

case "${1:-status}" in
  fetch|up|stop|status|running) "${1:-status}" ;;
  *) fail "usage: $0 fetch|up|stop|status|running" ;;
esac
