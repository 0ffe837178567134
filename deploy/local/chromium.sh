#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/browser): ./chromium.sh up|status
# Playwright (the PyPI package) drives this browser; it never downloads a browser of its own
# (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 in env.sh, and nothing here runs `playwright install`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

up() {
  [ -x "$CHROMIUM" ] && return
  if [ "$(id -u)" != 0 ]; then
    say "Chromium is not installed at $CHROMIUM: the browser tests will fail. Install it as root:"
    say "  sudo apt-get install -y chromium    (or set CHROMIUM to another Chromium binary)"
    return
  fi
  say "installing Debian's chromium for the browser tests (apt-get)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    || fail "apt-get install chromium failed"
}

status() {
  if [ -x "$CHROMIUM" ]; then echo "chromium     ok    $CHROMIUM"; else echo "chromium     missing"; fi
}

"${1:-up}"
