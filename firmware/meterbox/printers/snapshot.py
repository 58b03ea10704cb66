"""The raw values of one poll, and where each value came from (for `--explain`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from meterbox.printers.profiles import loader
from meterbox.printers.snmp import Value


@dataclass(frozen=True)
class Source:
    """Where a meter or supply came from, for `meterbox poll --explain`."""

    name: str
    oid: str
    raw: object
    rule: str



class Snapshot:
    """The raw values of one poll: scalars by OID, columns by root OID -> {index: value}."""

    def __init__(self, scalars: dict[str, Value], columns: dict[str, dict[str, Value]]) -> None:
        self.scalars = scalars
        self.columns = columns

    def column(self, key: str) -> dict[str, Value]:
        return self.columns.get(loader.standard().columns[key], {})

    @classmethod
    def from_records(cls, records: Mapping[str, Value], roots: Iterable[str]) -> Snapshot:
        """What a poll would see of a recording: every OID as a scalar, each root as a column."""
        columns = {r: {oid[len(r) + 1:]: v for oid, v in records.items() if oid.startswith(r + ".")}
                   for r in roots}
        return cls(dict(records), columns)


def index_key(item: tuple[str, object]) -> tuple[int, ...]:
    """Sort key for (index, value) pairs: "1.10" after "1.9", as the agent orders them."""
    return tuple(int(p) for p in item[0].split(".") if p.isdigit())
