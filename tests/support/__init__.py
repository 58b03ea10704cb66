"""Real components for the test suite: SNMP simulator, MQTT broker, test PKI.

Integration tests talk to real servers started here (STYLE.md section 5), never to
mocks. A component that is not installed skips the test on a workstation and fails
it under ``CI=true``: CI must never go green by skipping what it was meant to check.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
PRINTERS = TESTS / "printers"


def in_ci() -> bool:
    """True when running under CI (``CI=true``, as GitHub, GitLab and .ci/run set it)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require(binary_or_condition: str | Path | bool, how_to_install: str) -> None:
    """Skip (workstation) or fail (``CI=true``) unless a real component is present.

    ``binary_or_condition`` is a program name looked up on PATH, a path to an
    executable, or an already evaluated condition. ``how_to_install`` says what
    to install, e.g. ``"apt-get install mosquitto"``.
    """
    if isinstance(binary_or_condition, bool):
        present, what = binary_or_condition, "a required component"
    else:
        what = str(binary_or_condition)
        present = shutil.which(what) is not None
    if present:
        return
    message = f"{what} is not available: {how_to_install}"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


# What to install for each real component, for require()'s message.
INSTALL_SNMPSIM = "pip install -e '.[test]' in the project venv (snmpsim 1.2.2 and pysmi 2.x)"
INSTALL_MOSQUITTO = "apt-get install mosquitto mosquitto-clients"
INSTALL_NET_SNMP = "apt-get install snmp"
