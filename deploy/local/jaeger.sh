#!/usr/bin/env bash
# Optional trace viewer: Jaeger v2 (in-memory) built once from the Go module proxy, on loopback.
# ./jaeger.sh build|up|stop|status|running   (docs/decisions/0012-local-jaeger.md)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
MODULE=github.com/jaegertracing/jaeger
# The module kept its v1 path: module v1.N.P is the release v2.(N-63).P (v1.63.0 was v2.0.0).
minor=${JAEGER_VERSION#v1.}; minor=${minor%%.*}
if [[ $minor =~ ^[0-9]+$ ]] && [ "$minor" -ge 63 ]; then RELEASE="v2.$((minor - 63)).${JAEGER_VERSION##*.}"
else RELEASE="$JAEGER_VERSION"; fi
HOME_DIR="$MEDASSIST_CACHE_DIR/jaeger"
BIN="$HOME_DIR/bin/jaeger-$JAEGER_VERSION"
CONF="$ROOT_DIR/deploy/local/jaeger.yaml"
PIDFILE="$MEDASSIST_RUN_DIR/jaeger/jaeger.pid"
LOG="$MEDASSIST_RUN_DIR/logs/jaeger.log"
BUILD_LOG="$MEDASSIST_RUN_DIR/logs/jaeger-build.log"

go_bin() {
  local go=${GO:-$(command -v go || true)}
  [ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
  [ -n "$go" ] && "$go" version >/dev/null 2>&1 || return 1
  echo "$go"
}

build() {
  [ -x "$BIN" ] && return
  local go; go=$(go_bin) || fail "Go (1.21 or later) is needed once, to build Jaeger from the Go module proxy: \
install it (https://go.dev/doc/install or apt-get install golang) or set GO=/path/to/go. Nothing else needs Jaeger."
  local have; have=$("$go" env GOVERSION); have=${have#go}
  [ "$(printf '%s\n' 1.21 "$have" | sort -V | head -n 1)" = 1.21 ] \
    || fail "Go $have is too old to build Jaeger (1.21 or later; newer toolchains then come from the module proxy)"
  # Everything Go writes stays under the git-ignored cache; -modcacherw keeps it deletable with rm -rf.
  export GOPATH="$HOME_DIR/gopath" GOMODCACHE="$HOME_DIR/gomod" GOCACHE="$HOME_DIR/gocache" GOBIN="$HOME_DIR/bin"
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-modcacherw"
  mkdir -p "$GOBIN"
  say "building Jaeger $RELEASE ($MODULE@$JAEGER_VERSION) from the Go module proxy with Go $have;"
  say "  once, takes several minutes (log: $BUILD_LOG)"
  local started=$SECONDS src
  # `go install module/cmd/jaeger@version` refuses modules with replace directives (Jaeger has one), so the
  # verified module source is downloaded and built in place with its own go.mod and go.sum.
  src=$(cd "$HOME_DIR" && "$go" mod download -json "$MODULE@$JAEGER_VERSION" 2>>"$BUILD_LOG" | tee -a "$BUILD_LOG" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p') || true
  [ -n "$src" ] && [ -d "$src/cmd/jaeger" ] \
    || fail "could not fetch $MODULE@$JAEGER_VERSION (or it has no cmd/jaeger): see $BUILD_LOG"
  local info="$MODULE/internal/version"
  (cd "$src" && nice -n 10 "$go" build -trimpath \
      -ldflags "-s -w -X $info.latestVersion=$RELEASE" \
      -o "$BIN.partial" ./cmd/jaeger) >>"$BUILD_LOG" 2>&1 \
    || { rm -f "$BIN.partial"; tail -n 20 "$BUILD_LOG" >&2; fail "building Jaeger failed: see $BUILD_LOG"; }
  mv "$BIN.partial" "$BIN"
  # The module and build caches (about 3 GB) only serve a rebuild with another JAEGER_VERSION: keep the binary only.
  "$go" clean -cache -modcache >>"$BUILD_LOG" 2>&1 || true
  rm -rf "$GOPATH" "$GOCACHE" "$GOMODCACHE"
  say "built $BIN ($(du -h "$BIN" | cut -f1), $((SECONDS - started))s)"
}

# running: true (and silent) when Jaeger is up; services.sh asks this to decide where traces go.
running() { pid_alive "$PIDFILE" && port_open "$JAEGER_OTLP_HTTP_PORT"; }

ready() {
  pid_alive "$PIDFILE" && port_open "$JAEGER_OTLP_HTTP_PORT" || return 1
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null "http://127.0.0.1:$JAEGER_UI_PORT/api/services" 2>/dev/null
  else
    port_open "$JAEGER_UI_PORT"
  fi
}

# ready_or_dead: stop waiting when Jaeger answers or its process has exited (bad config, port race).
ready_or_dead() { ready || ! pid_alive "$PIDFILE"; }

up() {
  build
  if pid_alive "$PIDFILE"; then say "Jaeger already running: UI http://127.0.0.1:$JAEGER_UI_PORT"; return; fi
  port_open "$JAEGER_UI_PORT" && fail "port $JAEGER_UI_PORT is taken by another process; set JAEGER_UI_PORT to a free port"
  port_open "$JAEGER_OTLP_HTTP_PORT" \
    && fail "port $JAEGER_OTLP_HTTP_PORT is taken by another process; set JAEGER_OTLP_HTTP_PORT to a free port"
  port_open "$JAEGER_QUERY_GRPC_PORT" \
    && fail "port $JAEGER_QUERY_GRPC_PORT is taken by another process; set JAEGER_QUERY_GRPC_PORT to a free port"
  if [ -n "${JAEGER_UI_ASSETS:-}" ] && [ ! -f "$JAEGER_UI_ASSETS/index.html" ]; then
    fail "JAEGER_UI_ASSETS=$JAEGER_UI_ASSETS has no index.html (it should be a built jaeger-ui dist folder)"
  fi
  mkdir -p "$(dirname "$PIDFILE")"
  say "starting Jaeger $RELEASE (in memory): UI http://127.0.0.1:$JAEGER_UI_PORT, OTLP/HTTP 127.0.0.1:$JAEGER_OTLP_HTTP_PORT"
  # Jaeger's own OTEL_* settings must not come from a shell that points the services somewhere.
  nohup env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
    "$BIN" --config "file:$CONF" >>"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  wait_for "Jaeger" 60 ready_or_dead || true
  if ! ready; then
    tail -n 30 "$LOG" >&2; stop; fail "Jaeger did not become ready: see $LOG"
  fi
  say "Jaeger ready: http://127.0.0.1:$JAEGER_UI_PORT/api/traces?service=intake (UI page: docs/runbook.md);"
  say "  services started from now on (make services / make run) send their traces to it"
}

stop() {
  if stop_process Jaeger "$PIDFILE" 20; then say "Jaeger stopped (its in-memory traces are gone)"; fi
}

# status: a line only when Jaeger is running or was built, so `make status` stays quiet for those who never use it.
status() {
  if ready; then
    echo "jaeger       up    http://127.0.0.1:$JAEGER_UI_PORT (Jaeger $RELEASE, OTLP/HTTP 127.0.0.1:$JAEGER_OTLP_HTTP_PORT)"
  elif [ -x "$BIN" ] || pid_alive "$PIDFILE"; then
    echo "jaeger       down  (make jaeger)"
  fi
}

case "${1:-status}" in
  build|up|stop|status|running) "${1:-status}" ;;
  *) fail "usage: $0 build|up|stop|status|running" ;;
esac
