#!/usr/bin/env bash
# Private PostgreSQL cluster on loopback: ./postgres.sh up|stop|status
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# The cluster lives in $MEDASSIST_RUN_DIR/pg. Run as root, the server runs as the postgres user, who may not be
# able to reach a checkout under a private folder (mktemp -d, a home directory): then the cluster lives in a
# folder of the postgres user's own, one per checkout, and $MEDASSIST_RUN_DIR/pg points to it.
pg_home() {
  local home="$MEDASSIST_RUN_DIR/pg"
  [ -L "$home" ] && { readlink "$home"; return; }
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$MEDASSIST_RUN_DIR"; then
    home="$(getent passwd postgres | cut -d: -f6)/medassist-$(printf '%s' "$MEDASSIST_RUN_DIR" | sha1sum | cut -c1-12)"
    mkdir -p "$home" && ln -sfn "$home" "$MEDASSIST_RUN_DIR/pg"
  fi
  echo "$home"
}

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && { echo "$dir"; return; }; done
  command -v initdb >/dev/null && dirname "$(command -v initdb)"
}

install_if_missing() {
  [ -n "$(pg_bin)" ] && return
  [ "$(id -u)" = 0 ] || fail "PostgreSQL server is not installed; run as root or: sudo apt-get install -y postgresql"
  say "installing PostgreSQL server packages (apt-get)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
    || fail "apt-get install postgresql failed"
}

# settings: the project's settings (deploy/local/postgres.conf, docs/decisions/0047) copied into the cluster at
# every `up` and included last by its postgresql.conf, so a cluster made by an older checkout gets them too.
settings() {
  local conf="$PGDATA/medassist.conf" include="include_if_exists = 'medassist.conf'"
  cp "$ROOT_DIR/deploy/local/postgres.conf" "$conf"
  [ "$(id -u)" = 0 ] && chown postgres "$conf"
  grep -qxF "$include" "$PGDATA/postgresql.conf" || printf '%s\n' "$include" >>"$PGDATA/postgresql.conf"
}

up() {
  install_if_missing
  PG_HOME=$(pg_home); PGDATA="$PG_HOME/data"; LOG="$PG_HOME/postgres.log"
  local bin; bin=$(pg_bin)
  if as_db_owner "$bin/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    settings && as_db_owner "$bin/pg_ctl" -D "$PGDATA" reload >/dev/null
    say "PostgreSQL already running on 127.0.0.1:$PG_PORT (settings that need a restart apply at its next start)"
    return
  fi
  port_open "$PG_PORT" && fail "port $PG_PORT is taken by another process; set PG_PORT to a free port"
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    say "initialising a private cluster in $PGDATA"
    mkdir -p "$PGDATA"
    local pwfile="$PG_HOME/.pw"
    (umask 077 && printf '%s\n' "$PG_PASSWORD" > "$pwfile")
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$PG_HOME"; chmod 700 "$PGDATA"; fi
    as_db_owner "$bin/initdb" -D "$PGDATA" -U "$PG_USER" --pwfile="$pwfile" -A scram-sha-256 -E UTF8 \
      --locale=C.UTF-8 >"$MEDASSIST_RUN_DIR/logs/initdb.log" 2>&1 || fail "initdb failed: see $MEDASSIST_RUN_DIR/logs/initdb.log"
    rm -f "$pwfile"
    cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 300
synchronous_commit = on
fsync = on
CONF
  fi
  settings
  touch "$LOG"; [ "$(id -u)" = 0 ] && chown postgres "$LOG"
  say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_db_owner "$bin/pg_ctl" -D "$PGDATA" -l "$LOG" -w -t 60 start >/dev/null || fail "PostgreSQL did not start: see $LOG"
}

stop() {
  PGDATA="$(pg_home)/data"
  local bin; bin=$(pg_bin)
  [ -n "$bin" ] && [ -f "$PGDATA/postmaster.pid" ] && as_db_owner "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 \
    && say "PostgreSQL stopped" || true
}

status() {
  PGDATA="$(pg_home)/data"
  local bin; bin=$(pg_bin)
  if [ -n "$bin" ] && as_db_owner "$bin/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    echo "postgres     up    127.0.0.1:$PG_PORT"
  else
    echo "postgres     down"
  fi
}

# clean: delete the cluster (stopped first), also when it lives in the postgres user's folder.
clean() {
  stop
  local home; home=$(pg_home)
  rm -rf "$home" "$MEDASSIST_RUN_DIR/pg"
}

"${1:-status}"
