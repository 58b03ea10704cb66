"""Run the `meterbox` command in-process, as a user would type it, and capture what it prints."""

from __future__ import annotations

import contextlib
import io

from meterbox.cli import main


class CliError(AssertionError):
    """The command exited non-zero; carries what it printed on stderr."""

    def __init__(self, code: int, stderr: str) -> None:
        super().__init__(f"meterbox exited {code}: {stderr}")
        self.code = code
        self.stderr = stderr


def run_cli(*args: str) -> str:
    """stdout of `meterbox ARGS`; raises CliError with stderr on a non-zero exit."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    if code:
        raise CliError(code, err.getvalue())
    return out.getvalue()


def run_cli_fail(*args: str) -> CliError:
    """The error of a command that must fail."""
    try:
        run_cli(*args)
    except CliError as err:
        return err
    raise AssertionError(f"meterbox {' '.join(args)} succeeded but should have failed")
