#!/usr/bin/env bash
# Every service and the bank simulator as local processes under supervisord (deploy/local/supervisord.conf),
# which starts a service again when it dies: ./services.sh up|stop|status|restarts
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PIDFILE="$MEDASSIST_RUN_DIR/services.pid"
LOG="$MEDASSIST_RUN_DIR/logs/services.log"
SUPERVISOR_LOG="$MEDASSIST_RUN_DIR/logs/supervisord.log"
PY="$ROOT_DIR/.venv/bin/python"
CONF="$ROOT_DIR/deploy/local/supervisord.conf"
export ROOT_DIR
export BANK_PORT="${BANK_PORT:-8090}" INTAKE_PORT="${INTAKE_PORT:-8001}" ELIGIBILITY_PORT="${ELIGIBILITY_PORT:-8002}"
export CALCULATION_PORT="${CALCULATION_PORT:-8003}" APPROVAL_PORT="${APPROVAL_PORT:-8004}"
export DISBURSEMENT_PORT="${DISBURSEMENT_PORT:-8005}" MEDASSIST_DB_PREFIX="${MEDASSIST_DB_PREFIX:-}"
export CONSOLE_PORT="${CONSOLE_PORT:-8080}"
export NOTIFICATION_PORT="${NOTIFICATION_PORT:-8006}" SMS_PORT="${SMS_PORT:-8091}"
declare -A PORTS=([intake]=$INTAKE_PORT [eligibility]=$ELIGIBILITY_PORT [calculation]=$CALCULATION_PORT
                  [approval]=$APPROVAL_PORT [disbursement]=$DISBURSEMENT_PORT [notification]=$NOTIFICATION_PORT
                  [bank]=$BANK_PORT [sms]=$SMS_PORT [console]=$CONSOLE_PORT)
ctl() { "$ROOT_DIR/.venv/bin/supervisorctl" -c "$CONF" "$@"; }

ready() { "$PY" - "$1" <<'PYEOF'
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2)
except Exception:
    sys.exit(1)
PYEOF
}

# ready_or_dead PORT: stop waiting when the service is ready or supervisord has exited.
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
  mkdir -p "$MEDASSIST_RUN_DIR/bank"
  PATH="$ROOT_DIR/.venv/bin:$PATH" "$ROOT_DIR/.venv/bin/supervisord" -c "$CONF"  # daemonizes, writes $PIDFILE
  wait_for "supervisord" 20 pid_alive "$PIDFILE" || fail "supervisord did not start: see $SUPERVISOR_LOG"
  for name in bank sms intake eligibility calculation approval disbursement notification console; do
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
    ctl stop all >/dev/null 2>&1 || true  # SIGTERM each service: each shuts down gracefully
    kill -TERM "$pid" 2>/dev/null || true
    wait_for "services to stop" 40 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
    for name in "${!PORTS[@]}"; do
      wait_for "$name to release its port" 20 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/${PORTS[$name]}) 2>/dev/null" \
        || say "warning: port ${PORTS[$name]} ($name) still in use"
    done
    say "services stopped"
  fi
  rm -f "$PIDFILE"
}

# restarts NAME: how often supervisord started NAME again after it died, since supervisord started.
restarts() {
  [ -f "$SUPERVISOR_LOG" ] || { echo 0; return; }
  awk -v name="$1" '/supervisord started with pid/ { n = 0 }
                    $0 ~ ("exited: " name " \\(") && /not expected/ { n++ } END { print n + 0 }' "$SUPERVISOR_LOG"
}

status() {
  for name in bank sms intake eligibility calculation approval disbursement notification console; do
    local count=0
    pid_alive "$PIDFILE" && count=$(restarts "$name")
    if ready "${PORTS[$name]}"; then
      printf '%-12s up    http://127.0.0.1:%s/docs   restarts: %s\n' "$name" "${PORTS[$name]}" "$count"
    else
      printf '%-12s down  restarts: %s\n' "$name" "$count"
    fi
  done
}

"${1:-status}"
