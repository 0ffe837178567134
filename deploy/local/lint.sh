#!/usr/bin/env bash
# Static checks: ruff, strict mypy (shared library + every service's whole package), import-linter contracts.
# Run by `make lint` and by tests/contract/test_static_checks.py. Every check runs; the exit code is non-zero
# when any of them failed.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT_DIR"
BIN="${VENV_BIN:-$ROOT_DIR/.venv/bin}"

# Strict mypy over the shared library and every service's whole package (services, simulators, console).
PACKAGES=()
for dir in services/*/; do
  PACKAGES+=("$dir$(basename "$dir")")
done

failed=()
check() {
  local name="$1"
  shift
  echo "== $name"
  if ! "$@"; then
    failed+=("$name")
  fi
}

check ruff "$BIN/ruff" check --output-format concise shared services tests deploy bench
check mypy "$BIN/mypy" shared "${PACKAGES[@]}"
check import-linter "$BIN/lint-imports" --no-cache

if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint: ruff, mypy and import-linter clean"
