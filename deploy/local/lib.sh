# Helpers shared by the local stack scripts.
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
mkdir -p "$MEDASSIST_RUN_DIR/logs"

say()  { printf '\033[1m[stack]\033[0m %s\n' "$*"; }
fail() { printf '\033[31m[stack] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive FILE: true when FILE names a running process.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND until it succeeds or time runs out.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.5
  done
}

# as_db_owner CMD...: PostgreSQL refuses to run as root, so root runs it as the postgres user, from / (the
# postgres user may not be able to enter the current folder; every path the scripts pass is absolute).
as_db_owner() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# stop_process WHAT PIDFILE SECONDS: TERM the process, KILL it if still there after SECONDS; false when none ran.
stop_process() {
  local what=$1 pidfile=$2 secs=$3
  if ! pid_alive "$pidfile"; then rm -f "$pidfile"; return 1; fi
  local pid; pid=$(cat "$pidfile")
  kill "$pid"
  wait_for "$what to stop" "$secs" bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}
