#!/usr/bin/env bash
# Helm for rendering deploy/k8s (make k8s, make test): built once from the Go module proxy, kept in .cache.
# ./helm.sh build|path   (docs/decisions/0019-kubernetes-chart.md)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
HOME_DIR="$MEDASSIST_CACHE_DIR/helm"
BIN="$HOME_DIR/bin/helm-$HELM_VERSION"

go_bin() {
  local go=${GO:-$(command -v go || true)}
  [ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
  [ -n "$go" ] && "$go" version >/dev/null 2>&1 || return 1
  echo "$go"
}

build() {
  [ -x "$BIN" ] && return
  local go; go=$(go_bin) || fail "Go (1.24 or later) is needed once, to build Helm from the Go module proxy: \
install it (apt-get install golang, or https://go.dev/doc/install) or set GO=/path/to/go"
  # Everything Go writes stays under the git-ignored cache; -modcacherw keeps it deletable.
  export GOPATH="$HOME_DIR/gopath" GOMODCACHE="$HOME_DIR/gomod" GOCACHE="$HOME_DIR/gocache" GOBIN="$HOME_DIR/build"
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-modcacherw"
  local log="$MEDASSIST_RUN_DIR/logs/helm-build.log" started=$SECONDS
  say "building Helm $HELM_VERSION from the Go module proxy with $("$go" env GOVERSION); once, about 3 minutes"
  mkdir -p "$GOBIN" "$HOME_DIR/bin"
  nice -n 10 "$go" install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$log" 2>&1 \
    || { tail -n 20 "$log" >&2; fail "building Helm failed: see $log"; }
  mv "$GOBIN/helm" "$BIN"
  # The module and build caches (about 1.1 GB) only serve a rebuild with another HELM_VERSION.
  "$go" clean -cache -modcache >>"$log" 2>&1 || true
  rm -rf "$GOPATH" "$GOCACHE" "$GOMODCACHE" "$GOBIN"
  say "built $BIN ($(du -h "$BIN" | cut -f1), $((SECONDS - started))s)"
}

path() { build >&2; echo "$BIN"; }

case "${1:-path}" in
  build|path) "${1:-path}" ;;
  *) fail "usage: $0 build|path" ;;
esac
