"""The profile schema: every problem of a profile file, each with its file and key.

A broken profile must not half-load: `check` reports all problems at once (like the
config check), so one run of the tests or of `meterbox profiles` shows everything to fix.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from meterbox.printers.profiles.decoders import DECODERS, KINDS

OID = re.compile(r"^\d+(\.\d+)+$")
PREFIX = re.compile(r"^1\.3\.6\.1\.4\.1\.\d+\.(\d+\.)*$")
VENDOR_METER = re.compile(r"^vendor(\.[a-z0-9_-]+)+$")
SUPPLY = re.compile(r"^(toner|ink|drum|developer|fuser|transfer|waste|staples|other)\."
                    r"(black|cyan|magenta|yellow|none)(\.[2-9]|\.[1-9][0-9]+)?$")   # a second one: .2
CODE = re.compile(r"^[0-9a-f]{2}$")

# key -> (type, required). Types: "str", "int", "oid", "oids", "strs", "map", "regex", "regexes".
TOP = {"name": ("str", True), "match": ("prefixes", True), "match_descr": ("regexes", False),
       "match_probe": ("probe", False), "printer_only": ("bool", False), "mono": ("mono", False),
       "manufacturer": ("str", True), "covers": ("str", True),
       "recordings": ("strs", False), "identity": ("identity", False), "meters": ("rules", False),
       "tables": ("rules", False), "devices": ("rules", False), "sums": ("rules", False),
       "supplies": ("rules", False), "supply_kinds": ("rules", False)}
IDENTITY = {"serial": ("values", False), "model": ("values", False), "descr": ("patterns", False),
            "model_pattern": ("modelpatterns", False)}
DESCR_GROUPS = {"brand", "model", "serial"}
PROBE = {"oid": ("oid", True), "contains": ("texts", True)}
MONO = {"models": ("regex", True), "meters": ("meters", True)}
RULES: dict[str, dict[str, tuple[str, bool]]] = {
    "meters": {"oid": ("oid", True), "name": ("meter", False), "decode": ("decode", False),
               "words": ("words", False), "unit": ("str", False), "models": ("regex", False)},
    "tables": {"column": ("oid", True), "key": ("oids", False), "rows": ("keyed", False),
               "sums": ("summed", False), "unit": ("str", False), "models": ("regex", False)},
    "devices": {"prefix": ("oid", True), "roles": ("roles", True), "cells": ("keyed", False),
                "sums": ("summed", False), "unit": ("str", False), "models": ("regex", False)},
    "sums": {"name": ("meter", True), "of": ("meters", True), "models": ("regex", False)},
    "supplies": {"oid": ("oid", True), "decode": ("decode", True), "words": ("supplywords", True),
                 "divide": ("int", False), "models": ("regex", False)},
    "supply_kinds": {"kind": ("kind", True), "words": ("strs", True), "models": ("regex", False)},
}
KINDS_OF_SUPPLY = ("toner", "ink", "drum", "developer", "fuser", "transfer", "waste", "staples", "other")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one profile file, at one key."""

    path: Path
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.path.name}: {self.key}: {self.message}"


class Checker:
    """Collects the problems of one profile file."""

    def __init__(self, path: Path, canonical: Iterable[str]) -> None:
        self.path = path
        self.canonical = frozenset(canonical)
        self.problems: list[Problem] = []
        self.names: set[str] = set()  # meter names this profile produces, for [[sums]]

    def add(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.path, key, message))

    def keys(self, where: str, data: dict[str, Any], spec: dict[str, tuple[str, bool]]) -> None:
        """Unknown keys (with a suggestion), missing required keys, then each value."""
        for key, value in data.items():
            if key not in spec:
                close = difflib.get_close_matches(key, list(spec), n=1)
                self.add(f"{where}{key}", "unknown key" + (f'; did you mean "{close[0]}"?' if close else ""))
                continue
            self.value(f"{where}{key}", spec[key][0], value)
        for key, (_, required) in spec.items():
            if required and key not in data:
                self.add(f"{where}{key}", "missing (required)")

    def value(self, key: str, kind: str, value: Any) -> None:
        check = getattr(self, f"_{kind}")
        check(key, value)

    def _str(self, key: str, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            self.add(key, f"expected a non-empty text, got {value!r}")

    def _int(self, key: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            self.add(key, f"expected a whole number above 0, got {value!r}")

    def _bool(self, key: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.add(key, f"expected true or false, got {value!r}")

    def _texts(self, key: str, value: Any) -> None:
        """One text or a list of texts (any of them)."""
        if isinstance(value, str):
            self._str(key, value)
        else:
            self._strs(key, value)

    def _strs(self, key: str, value: Any) -> None:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(key, f"expected a list of texts, got {value!r}")

    def _oid(self, key: str, value: Any) -> None:
        if not isinstance(value, str) or not OID.match(value):
            self.add(key, f"expected a numeric OID like 1.3.6.1.4.1.11.2, got {value!r}")

    def _oids(self, key: str, value: Any) -> None:
        if not isinstance(value, list) or not value:
            self.add(key, f"expected a list of OIDs, got {value!r}")
            return
        for i, v in enumerate(value):
            self._oid(f"{key}[{i}]", v)

    def _prefixes(self, key: str, value: Any) -> None:
        if not isinstance(value, list) or not value:
            self.add(key, "expected a list of sysObjectID prefixes")
            return
        for i, v in enumerate(value):
            if not isinstance(v, str) or not PREFIX.match(v):
                self.add(f"{key}[{i}]", f"expected an enterprise prefix ending in a dot, like "
                                        f"1.3.6.1.4.1.2435., got {v!r}")

    def _regex(self, key: str, value: Any) -> None:
        if not isinstance(value, str):
            self.add(key, f"expected a regular expression, got {value!r}")
            return
        try:
            re.compile(value)
        except re.error as err:
            self.add(key, f"not a valid regular expression: {err}")

    def _regexes(self, key: str, value: Any) -> None:
        if not isinstance(value, list):
            self.add(key, "expected a list of regular expressions")
            return
        for i, v in enumerate(value):
            self._regex(f"{key}[{i}]", v)

    def _patterns(self, key: str, value: Any) -> None:
        """sysDescr patterns: regular expressions with named groups brand, model, serial."""
        self._regexes(key, value)
        for i, v in enumerate(value if isinstance(value, list) else []):
            try:
                groups = set(re.compile(v).groupindex) if isinstance(v, str) else DESCR_GROUPS
            except re.error:
                continue
            if not groups or groups - DESCR_GROUPS:
                self.add(f"{key}[{i}]", f"name what the pattern finds with (?P<model>...), (?P<brand>...) "
                                        f"or (?P<serial>...); found groups {sorted(groups)}")

    def _modelpatterns(self, key: str, value: Any) -> None:
        """Model patterns: regular expressions with a (?P<model>...) group."""
        self._regexes(key, value)
        for i, v in enumerate(value if isinstance(value, list) else []):
            try:
                groups = set(re.compile(v).groupindex) if isinstance(v, str) else {"model"}
            except re.error:
                continue
            if "model" not in groups:
                self.add(f"{key}[{i}]", "name the model with (?P<model>...)")

    def _mono(self, key: str, value: Any) -> None:
        if not isinstance(value, dict):
            self.add(key, 'expected a table [mono] with models = "<regex>" and meters = [...]')
            return
        self.keys(f"{key}.", value, MONO)

    def _probe(self, key: str, value: Any) -> None:
        if not isinstance(value, dict):
            self.add(key, 'expected a table { oid = "...", contains = "..." }')
            return
        self.keys(f"{key}.", value, PROBE)

    def _values(self, key: str, value: Any) -> None:
        """Identity OIDs: "1.3..." or { oid = "1.3...", decode = "ieee1284_model" }."""
        if not isinstance(value, list):
            self.add(key, "expected a list of OIDs or { oid, decode } tables")
            return
        for i, v in enumerate(value):
            if isinstance(v, dict):
                self.keys(f"{key}[{i}].", v, {"oid": ("oid", True), "decode": ("textdecode", False)})
            else:
                self._oid(f"{key}[{i}]", v)

    def _textdecode(self, key: str, value: Any) -> None:
        self._decode(key, value)
        if KINDS.get(value, "text") != "text":
            self.add(key, f"decoder {value!r} does not yield a text; use one of "
                          f"{', '.join(sorted(n for n, k in KINDS.items() if k == 'text'))}")

    def _identity(self, key: str, value: Any) -> None:
        if not isinstance(value, dict):
            self.add(key, "expected a table [identity]")
            return
        self.keys(f"{key}.", value, IDENTITY)

    def _rules(self, key: str, value: Any) -> None:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.add(key, f"expected [[{key}]] tables")
            return
        for i, rule in enumerate(value):
            self.keys(f"{key}[{i}].", rule, RULES[key])
            self.rule(f"{key}[{i}]", key, rule)

    def rule(self, where: str, section: str, rule: dict[str, Any]) -> None:
        """Checks across keys of one rule: blob decoders need words, scalars need a name."""
        if section == "meters":
            blob = KINDS.get(rule.get("decode", "int")) == "words"
            if blob and "words" not in rule:
                self.add(f"{where}.words", f"decoder {rule['decode']!r} yields several values: map them with words")
            if not blob and "name" not in rule:
                self.add(f"{where}.name", "missing (a scalar meter needs a name)")
            if not blob and "words" in rule:
                self.add(f"{where}.words", f"decoder {rule.get('decode', 'int')!r} yields one value; use name")
        if section in ("tables", "devices") and not (rule.get("rows") or rule.get("cells") or rule.get("sums")):
            self.add(where, "maps nothing: give rows/cells or sums")

    def _decode(self, key: str, value: Any) -> None:
        if value not in DECODERS:
            self.add(key, f"{value!r} is not a known decoder ({', '.join(sorted(DECODERS))})")

    def _meter(self, key: str, value: Any, produced: bool = True) -> None:
        if not isinstance(value, str) or not (value in self.canonical or VENDOR_METER.match(value)):
            close = difflib.get_close_matches(str(value), sorted(self.canonical), n=1)
            self.add(key, f"{value!r} is not a canonical meter name (DESIGN.md) nor vendor.<name> "
                          "in lower case" + (f'; did you mean "{close[0]}"?' if close else ""))
            return
        if produced:
            self.names.add(value)

    def _meters(self, key: str, value: Any) -> None:
        if not isinstance(value, list) or not value:
            self.add(key, "expected a list of meter names")
            return
        for i, v in enumerate(value):
            self._meter(f"{key}[{i}]", v, produced=False)

    def _words(self, key: str, value: Any) -> None:
        if not isinstance(value, dict) or not value:
            self.add(key, 'expected a table like { "00" = "impressions.total" }')
            return
        for code, name in value.items():
            if not CODE.match(code):
                self.add(f"{key}.{code}", "a word code is two lower-case hex digits, like \"0a\"")
            self._meter(f"{key}.{code}", name)

    def _supplywords(self, key: str, value: Any) -> None:
        if not isinstance(value, dict) or not value:
            self.add(key, 'expected a table like { "6f" = "toner.black" }')
            return
        for code, name in value.items():
            if not CODE.match(code):
                self.add(f"{key}.{code}", "a word code is two lower-case hex digits, like \"6f\"")
            if not isinstance(name, str) or not SUPPLY.match(name):
                self.add(f"{key}.{code}", f"{name!r} is not a supply name <kind>.<colour>[.<n>] (DESIGN.md)")

    def _keyed(self, key: str, value: Any) -> None:
        if not isinstance(value, dict):
            self.add(key, 'expected a table like { "10" = "impressions.total" }')
            return
        for pattern, name in value.items():
            self._meter(f"{key}.{pattern!r}", name)

    def _summed(self, key: str, value: Any) -> None:
        if not isinstance(value, dict):
            self.add(key, 'expected a table like { "scans.total" = ["scanner.20.11", "scanner.20.12"] }')
            return
        for name, patterns in value.items():
            self._meter(f"{key}.{name}", name)
            if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
                self.add(f"{key}.{name}", f"expected a list of row keys or patterns, got {patterns!r}")

    def _roles(self, key: str, value: Any) -> None:
        if not isinstance(value, dict) or not all(
                isinstance(v, list) and all(isinstance(i, int) for i in v) for v in value.values()):
            self.add(key, "expected a table like { printer = [1], copier = [11, 103] }")

    def _kind(self, key: str, value: Any) -> None:
        if value not in KINDS_OF_SUPPLY:
            self.add(key, f"{value!r} is not a supply kind ({', '.join(KINDS_OF_SUPPLY)})")


def check(path: Path, data: dict[str, Any], canonical: Iterable[str]) -> list[Problem]:
    """All problems of one parsed profile file (empty when it is fine)."""
    checker = Checker(path, canonical)
    checker.keys("", data, TOP)
    if isinstance(data.get("name"), str) and data["name"] != path.stem:
        checker.add("name", f"{data['name']!r} must equal the file name {path.stem!r}")
    for i, rule in enumerate(data.get("sums") or []):
        for j, part in enumerate(rule.get("of") or [] if isinstance(rule, dict) else []):
            if isinstance(part, str) and part not in checker.names:
                checker.add(f"sums[{i}].of[{j}]", f"{part!r} is not produced by any rule of this profile")
    return checker.problems
