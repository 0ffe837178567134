#!/usr/bin/env bash
# Debian's Chromium and a Chinese font for the browser tests (tests/browser): ./chromium.sh up|status
# Playwright (the PyPI package) drives this browser; it never downloads a browser of its own
# (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 in env.sh, and nothing here runs `playwright install`). The console's
# labels are Chinese first: without a CJK font its screenshots would show empty boxes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

missing() {
  local packages=()
  [ -x "$CHROMIUM" ] || packages+=(chromium)
  fc-list :lang=zh 2>/dev/null | grep -q . || packages+=(fonts-wqy-microhei)
  echo "${packages[@]}"
}

up() {
  local packages; packages=$(missing)
  [ -z "$packages" ] && return
  if [ "$(id -u)" != 0 ]; then
    say "missing for the browser tests: $packages. Install them as root:"
    say "  sudo apt-get install -y $packages    (or set CHROMIUM to another Chromium binary)"
    return
  fi
  say "installing $packages for the browser tests (apt-get)"
  # shellcheck disable=SC2086  # one word per package
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null \
    || fail "apt-get install $packages failed"
}

status() {
  if [ -x "$CHROMIUM" ]; then echo "chromium     ok    $CHROMIUM"; else echo "chromium     missing"; fi
}

"${1:-up}"
