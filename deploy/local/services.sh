#!/usr/bin/env bash
# Every service and the bank simulator as local processes under honcho: ./services.sh up|stop|status
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PIDFILE="$MEDASSIST_RUN_DIR/services.pid"
LOG="$MEDASSIST_RUN_DIR/logs/services.log"
PY="$ROOT_DIR/.venv/bin/python"
declare -A PORTS=([intake]=8001 [eligibility]=8002 [calculation]=8003 [approval]=8004 [disbursement]=8005 [bank]=8090)

ready() { "$PY" - "$1" <<'PYEOF'
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2)
except Exception:
    sys.exit(1)
PYEOF
}

# ready_or_dead PORT: stop waiting when the service is ready or honcho has exited (a service crashed).
ready_or_dead() { ready "$1" || ! pid_alive "$PIDFILE"; }

up() {
  if pid_alive "$PIDFILE"; then say "services already running (pid $(cat "$PIDFILE"))"; return; fi
  for name in "${!PORTS[@]}"; do
    port_open "${PORTS[$name]}" && fail "port ${PORTS[$name]} ($name) is taken by another process"
  done
  # Traces go to the local Zipkin when it is up (make traces); an OTEL_EXPORTER_ZIPKIN_ENDPOINT already set wins.
  if [ -z "${OTEL_EXPORTER_ZIPKIN_ENDPOINT:-}" ] && bash "$ROOT_DIR/deploy/local/zipkin.sh" running 2>/dev/null; then
    export OTEL_EXPORTER_ZIPKIN_ENDPOINT="http://127.0.0.1:$ZIPKIN_PORT/api/v2/spans"
    say "traces go to Zipkin: http://127.0.0.1:$ZIPKIN_PORT/zipkin/"
  fi
  say "starting services (log: $LOG)"
  cd "$ROOT_DIR"
  PATH="$ROOT_DIR/.venv/bin:$PATH" nohup "$ROOT_DIR/.venv/bin/honcho" -f deploy/local/Procfile start >>"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for name in bank intake eligibility calculation approval disbursement; do
    wait_for "$name" 120 ready_or_dead "${PORTS[$name]}" || true
    if ! pid_alive "$PIDFILE" || ! ready "${PORTS[$name]}"; then
      tail -n 40 "$LOG" >&2; stop; fail "$name did not become ready: see $LOG"
    fi
  done
  say "services ready"
}

stop() {
  if pid_alive "$PIDFILE"; then
    local pid; pid=$(cat "$PIDFILE")
    kill -TERM "$pid" 2>/dev/null || true  # honcho passes SIGTERM on: each service shuts down gracefully
    wait_for "services to stop" 40 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL -- "-$pid" 2>/dev/null || true
    for name in "${!PORTS[@]}"; do
      wait_for "$name to release its port" 20 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/${PORTS[$name]}) 2>/dev/null" \
        || say "warning: port ${PORTS[$name]} ($name) still in use"
    done
    say "services stopped"
  fi
  rm -f "$PIDFILE"
}

status() {
  for name in bank intake eligibility calculation approval disbursement; do
    if ready "${PORTS[$name]}"; then
      printf '%-12s up    http://127.0.0.1:%s/docs\n' "$name" "${PORTS[$name]}"
    else
      printf '%-12s down\n' "$name"
    fi
  done
}

"${1:-status}"
