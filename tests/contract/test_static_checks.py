"""The static checks stay clean: ruff, strict mypy on shared and the domain models, import-linter contracts.

Runs deploy/local/lint.sh (the same script as `make lint`), so `make test` fails on a lint regression.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = ROOT / "deploy" / "local" / "lint.sh"


def test_lint_script_passes() -> None:
    # The script sources env.sh itself; it finds the tools next to the running interpreter (the virtualenv).
    env_bin = str(Path(sys.executable).parent)
    result = subprocess.run(
        ["bash", str(LINT)],
        cwd=ROOT,
        env={**os.environ, "VENV_BIN": env_bin},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"deploy/local/lint.sh failed:\n{result.stdout}\n{result.stderr}"
