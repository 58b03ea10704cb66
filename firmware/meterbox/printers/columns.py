"""What a printer's table columns held, so that most polls ask only for the cells that change.

Printers' tables hardly ever change shape, and most of their columns never change while a
row exists (a supply's type, colorant and description, an hrDevice's type). After a full
walk the rows are remembered and the unchanging ("static") cells kept, so:
- a steady-state poll GETs only the changing cells of the remembered rows, in the same GET
  as the scalars: one round trip;
- every REWALK-th poll walks the changing columns again, to find rows that came or went
  (a new cartridge), and GETs the static cells of new rows only;
- every FULL_WALK-th poll, and at once when a remembered row is gone, walks everything.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Iterable, Union

Value = Union[int, bytes, str]
Columns = dict[str, dict[str, Value]]   # root OID -> {row suffix: value}

REWALK = 12        # every 12th poll walks the changing columns (new cartridge rows)
FULL_WALK = 144    # every 144th poll walks every column (a description that changed with a cartridge)

GET, REWALK_TURN, FULL = "get", "rewalk", "full"


def _table(root: str) -> str:
    """The table entry a column belongs to: its OID without the column number."""
    return root.rsplit(".", 1)[0]


@dataclass
class Memory:
    """One printer's columns (ROOTS, of which STATIC never change while their row exists)."""

    roots: tuple[str, ...]
    static: frozenset[str]
    rows: dict[str, list[str]] = field(default_factory=dict)   # changing root -> row suffixes, in walk order
    kept: Columns = field(default_factory=dict)                # static root -> its cells
    polls: int = 0
    learned: bool = False

    @property
    def dynamic(self) -> list[str]:
        return [r for r in self.roots if r not in self.static]

    @classmethod
    def of(cls, roots: Iterable[str], static: Iterable[str], polls: int = 0) -> Memory:
        """A printer's memory; the column lists are shared by every printer of the same shape."""
        return cls(*_shape(tuple(roots), frozenset(static)), polls=polls)

    def turn(self) -> str:
        """What this poll does: GET the remembered cells, walk the changing columns, or walk all."""
        self.polls += 1
        if not self.learned or self.polls % FULL_WALK == 0:
            return FULL
        return REWALK_TURN if self.polls % REWALK == 0 else GET

    def cells(self) -> list[str]:
        """The changing cells of the remembered rows: what a steady-state poll GETs."""
        return [f"{root}.{sfx}" for root in self.dynamic for sfx in self.rows.get(root, ())]

    def from_get(self, values: dict[str, Value]) -> Columns | None:
        """Columns from a GET of cells() and the kept static cells; None if a remembered row is gone."""
        columns: Columns = {}
        for root in self.dynamic:
            cells = columns[root] = {}
            for sfx in self.rows.get(root, ()):
                value = values.get(f"{root}.{sfx}")
                if value is None:
                    return None
                cells[sfx] = value
        return self._with_kept(columns)

    def learn(self, walked: Columns) -> None:
        """A full walk: remember every root's rows and keep the static cells."""
        self.rows = {root: list(walked.get(root, {})) for root in self.dynamic}
        self.kept = {root: dict(walked.get(root, {})) for root in self.static}
        self.learned = True

    def new_rows(self, walked: Columns) -> list[str]:
        """After a walk of the changing columns: the static cells of rows that are new in their table."""
        known = self._table_rows(self.rows)
        seen = self._table_rows({r: list(c) for r, c in walked.items()})
        return [f"{root}.{sfx}" for root in self.static if _table(root) in seen
                for sfx in seen[_table(root)] - known.get(_table(root), set())]

    def update(self, walked: Columns, static_cells: dict[str, Value]) -> Columns:
        """After a walk of the changing columns and a GET of new rows' static cells: the whole columns."""
        tables = self._table_rows({r: list(c) for r, c in walked.items()})
        for root in self.static:
            rows = tables.get(_table(root))
            if rows is None:        # a table without changing columns keeps its rows
                continue
            cells = {sfx: v for sfx, v in self.kept.get(root, {}).items() if sfx in rows}
            cells.update({oid[len(root) + 1:]: v for oid, v in static_cells.items() if oid.startswith(root + ".")})
            self.kept[root] = cells
        for root in self.dynamic:
            self.rows[root] = list(walked.get(root, {}))
        return self._with_kept({root: walked.get(root, {}) for root in self.dynamic})

    def _with_kept(self, columns: Columns) -> Columns:
        return {root: columns.get(root, self.kept.get(root, {})) for root in self.roots}

    def _table_rows(self, rows: dict[str, list[str]]) -> dict[str, set[str]]:
        """table entry -> row suffixes seen in its changing columns."""
        out: dict[str, set[str]] = {}
        for root in self.dynamic:
            if root in rows:
                out.setdefault(_table(root), set()).update(rows[root])
        return out


@functools.lru_cache(maxsize=64)
def _shape(roots: tuple[str, ...], static: frozenset[str]) -> tuple[tuple[str, ...], frozenset[str]]:
    return roots, static & frozenset(roots)
