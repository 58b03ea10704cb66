"""Config problems as a person reads them: each with its line, what is wrong and what to do."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meterbox.config.schema import SECRET_KEYS
from meterbox.errors import ConfigError

# ---------------------------------------------------------------------------- problems

@dataclass(frozen=True)
class Problem:
    """One thing wrong in the file; all are gathered first so one edit session fixes them all."""

    subject: str                # 'uplink.port = "8883x"' or 'poll.intervall'
    message: str                # what is wrong and what to do
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}  " if self.line else ""
        return f"{where}{self.subject}: {self.message}"


class ConfigProblems(ConfigError):
    """A ConfigError that also carries each Problem, for `check-config` and tests."""

    def __init__(self, path: Path, problems: Iterable[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))
        count = len(self.problems)
        head = f"{path} has {count} problem{'' if count == 1 else 's'}; nothing was changed:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class _Invalid(ValueError):
    """Raised by a value parser; the table that read the value adds its key and line."""


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    """The closest known word, because most mistakes are typos."""
    close = difflib.get_close_matches(word, list(options), n=1)
    return f'; did you mean "{close[0]}"?' if close else ""


def _show(key: str, value: Any) -> str:
    """VALUE as written in TOML, or <secret> for communities and keys, which must never print."""
    if key in SECRET_KEYS:
        return "<secret>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list):
        return "[…]"
    return str(value)


# ---------------------------------------------------------------------------- line numbers

LineKey = tuple[str, int, str]      # (table, occurrence of [[array]] or 0, key or "" for the header)
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _line_index(text: str) -> dict[LineKey, int]:
    """The line of each key and header, since tomllib keeps no positions; the first one wins.

    A small scanner of TOML's layout, not a second parser: it knows headers, dotted and quoted
    keys, and skips values whole (strings of every kind, multi-line arrays, inline tables,
    comments), so a "key = " inside a string or an array is never taken for a key.
    tomllib has already accepted the text when this runs.
    """
    lines: dict[LineKey, int] = {}
    arrays: dict[str, int] = {}
    table, index = "", 0
    scan = _Scanner(text)
    while scan.skip_blank():
        if scan.peek() == "[":
            is_array = scan.text.startswith("[[", scan.i)
            scan.i += 2 if is_array else 1
            parts = scan.key_path("]")
            scan.i += 2 if is_array else 1
            table, index = _enter(parts, is_array, arrays)
            lines.setdefault((table, index, ""), scan.line)
            parent, _, last = table.rpartition(".")       # [box] is also key "box" of the top level
            lines.setdefault((parent, arrays.get(parent, 0), last), scan.line)
            scan.rest_of_line()
            continue
        line = scan.line
        parts = scan.key_path("=")
        scan.i += 1
        for depth in range(len(parts)):                   # uplink.port = 1: "uplink", then uplink's "port"
            where = ".".join(p for p in (table, *parts[:depth]) if p)
            lines.setdefault((where, index if depth == 0 else 0, parts[depth]), line)
        scan.value()
    return lines


class _Scanner:
    """Walks TOML text, counting lines; each method leaves `i` just after what it read."""

    def __init__(self, text: str) -> None:
        self.text, self.i, self.line = text, 0, 1

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def skip_blank(self) -> bool:
        """Skip spaces, newlines and comments; False at the end."""
        while self.i < len(self.text):
            c = self.text[self.i]
            if c == "\n":
                self.line += 1
            elif c == "#":
                self.rest_of_line()
                continue
            elif c not in " \t\r":
                return True
            self.i += 1
        return False

    def rest_of_line(self) -> None:
        end = self.text.find("\n", self.i)
        self.i = len(self.text) if end < 0 else end

    def key_path(self, stop: str) -> list[str]:
        """bare.or."quoted".key up to STOP (not consumed)."""
        parts: list[str] = []
        while self.i < len(self.text) and self.text[self.i] != stop:
            c = self.text[self.i]
            if c in "\"'":
                start = self.i
                self.string()
                parts.append(self.text[start + 1:self.i - 1])
            elif (m := _BARE.match(self.text, self.i)) is not None:
                parts.append(m.group())
                self.i = m.end()
            else:
                self.i += 1                                 # dots and spaces
        return parts

    def string(self) -> None:
        """One string of any kind, starting at its opening quote."""
        quote = self.text[self.i]
        triple = self.text.startswith(quote * 3, self.i)
        self.i += 3 if triple else 1
        close = quote * 3 if triple else quote
        while self.i < len(self.text):
            c = self.text[self.i]
            if c == "\\" and quote == '"':
                self.i += 2
                continue
            if c == "\n":
                self.line += 1
            if self.text.startswith(close, self.i):
                self.i += len(close)
                while triple and self.peek() == quote:    # """a"""" ends with a quote in the string
                    self.i += 1
                return
            self.i += 1

    def value(self) -> None:
        """Skip one value: to the end of its line, or of its last line for arrays and inline tables."""
        depth = 0
        while self.i < len(self.text):
            c = self.text[self.i]
            if c in "\"'":
                self.string()
                continue
            if c == "#":
                self.rest_of_line()
                continue
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
            elif c == "\n":
                if depth <= 0:
                    return
                self.line += 1
            self.i += 1


def _enter(parts: list[str], is_array: bool, arrays: dict[str, int]) -> tuple[str, int]:
    """The table a header opens, and which [[array]] entry it is (counting from 1)."""
    table = ".".join(parts)
    if not is_array:
        return table, 0
    arrays[table] = arrays.get(table, 0) + 1
    return table, arrays[table]
