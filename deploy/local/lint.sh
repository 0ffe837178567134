#!/usr/bin/env bash
# Static checks: ruff, strict mypy (shared library + every service's domain model), import-linter contracts.
# Run by `make lint` and by tests/contract/test_static_checks.py. Every check runs; the exit code is non-zero
# when any of them failed.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT_DIR"
BIN="${VENV_BIN:-$ROOT_DIR/.venv/bin}"

# Services whose whole package is strictly typed; the others are checked on their domain model only, until
# they join the list (issue 16: every service, no new ignores).
STRICT_SERVICES="intake notification approval calculation eligibility disbursement"
DOMAINS=()
for service in $SERVICES; do
  if [[ " $STRICT_SERVICES " == *" $service "* ]]; then
    DOMAINS+=("services/$service/$service")
  else
    DOMAINS+=("services/$service/$service/domain")
  fi
done
DOMAINS+=("services/console/console")

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
check mypy "$BIN/mypy" shared "${DOMAINS[@]}"
check import-linter "$BIN/lint-imports" --no-cache

if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint: ruff, mypy and import-linter clean"
