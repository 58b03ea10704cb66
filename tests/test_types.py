"""The firmware is typed (STYLE.md 11): mypy --strict over firmware/meterbox finds nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_firmware_is_mypy_strict_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "-p", "meterbox"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
