#!/usr/bin/env bash
# Debian's Prometheus scraping every service, with the alert rules: ./prometheus.sh install|up|stop|status
# Config and rules: deploy/prometheus/ (rules unit-tested with promtool, tests/contract/test_prometheus.py).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CONF_DIR="$ROOT_DIR/deploy/prometheus"
CONFIG="${PROMETHEUS_CONFIG:-$CONF_DIR/prometheus.yml}"  # the tests point it at a config of their own
DATA="$MEDASSIST_RUN_DIR/prometheus/data"
PIDFILE="$MEDASSIST_RUN_DIR/prometheus/prometheus.pid"
LOG="$MEDASSIST_RUN_DIR/logs/prometheus.log"

# install: Debian's prometheus package brings prometheus and promtool (make up runs this: the rule tests need promtool).
install() {
  command -v "$PROMETHEUS" >/dev/null && command -v "$PROMTOOL" >/dev/null && return
  if [ "$(id -u)" != 0 ]; then
    say "prometheus/promtool are missing: the rule tests will fail. Install them as root:"
    say "  sudo apt-get install -y prometheus"
    return
  fi
  say "installing Debian's prometheus (prometheus, promtool) with apt-get"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    prometheus >/dev/null || fail "apt-get install prometheus failed"
  # The package starts a system-wide Prometheus on *:9090; the stack runs its own on loopback.
  if command -v systemctl >/dev/null; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
}

ready() { "$ROOT_DIR/.venv/bin/python" -c "import sys, urllib.request
try: urllib.request.urlopen('http://127.0.0.1:$PROMETHEUS_PORT/-/ready', timeout=2)
except Exception: sys.exit(1)" 2>/dev/null; }

ready_or_dead() { ready || ! pid_alive "$PIDFILE"; }

up() {
  install
  command -v "$PROMETHEUS" >/dev/null || fail "prometheus is not installed (apt-get install prometheus)"
  if pid_alive "$PIDFILE"; then say "Prometheus already running: http://127.0.0.1:$PROMETHEUS_PORT/alerts"; return; fi
  port_open "$PROMETHEUS_PORT" && fail "port $PROMETHEUS_PORT is taken by another process; set PROMETHEUS_PORT"
  "$PROMTOOL" check config "$CONFIG" >/dev/null || fail "$CONFIG is invalid"
  mkdir -p "$DATA"
  say "starting Prometheus: http://127.0.0.1:$PROMETHEUS_PORT/alerts (scrapes every service, rules: deploy/prometheus)"
  nohup "$PROMETHEUS" --config.file="$CONFIG" --storage.tsdb.path="$DATA" \
    --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >>"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  wait_for "Prometheus" 60 ready_or_dead || true
  if ! ready; then tail -n 30 "$LOG" >&2; stop; fail "Prometheus did not become ready: see $LOG"; fi
}

stop() {
  if stop_process Prometheus "$PIDFILE" 20; then say "Prometheus stopped"; fi
}

# status: a line only when Prometheus runs, so `make status` stays quiet for those who never use it.
status() {
  if pid_alive "$PIDFILE" && ready; then
    echo "prometheus   up    http://127.0.0.1:$PROMETHEUS_PORT/alerts"
  elif pid_alive "$PIDFILE"; then
    echo "prometheus   down"
  fi
}

case "${1:-status}" in
  install|up|stop|status) "${1:-status}" ;;
  *) fail "usage: $0 install|up|stop|status" ;;
esac
