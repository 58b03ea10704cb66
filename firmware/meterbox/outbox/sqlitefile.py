"""A SQLite database file read page by page, without SQLite: what recovery needs from a damaged file.

SQLite itself refuses a file whose header is damaged and stops at the first broken b-tree
page; the rows on every other page are still there. This reads the file format
(https://www.sqlite.org/fileformat2.html) directly: the 100-byte header if it is intact (else
the page size is found from the pages themselves), the committed frames of the WAL file
beside it (the newest version of each page they hold), the free-page list, and the cells of
every b-tree leaf page of a table, decoded as records. Nothing is written.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Union

MAGIC = b"SQLite format 3\x00"
WAL_MAGICS = (0x377F0682, 0x377F0683)     # little- or big-endian checksums
PAGE_SIZES = (1024, 4096, 512, 2048, 8192, 16384, 32768, 65536)   # the meterbox store uses 1024
LEAF_TABLE, INTERIOR_TABLE, LEAF_INDEX, INTERIOR_INDEX = 13, 5, 10, 2
BTREE = frozenset({LEAF_TABLE, INTERIOR_TABLE, LEAF_INDEX, INTERIOR_INDEX})
SAMPLE = 4000      # pages looked at to find the page size of a file whose header is gone

Value = Union[None, int, float, str, bytes]
Cell = tuple[int, list[Value]]   # rowid, the record's values


class NotSqlite(Exception):
    """Neither a SQLite header nor any b-tree page: this file is not a SQLite database."""


class BadRecord(Exception):
    """A cell that does not decode as a record."""


def varint(buf: bytes, i: int) -> tuple[int, int]:
    """SQLite's big-endian variable-length integer at I: (value, the offset after it)."""
    value = 0
    for k in range(8):
        byte = buf[i + k]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i + k + 1
    return (value << 8) | buf[i + 8], i + 9


INT_SIZES = (0, 1, 2, 3, 4, 6, 8)


def record(payload: bytes) -> list[Value]:
    """The values of one record (header of serial types, then the body); BadRecord if it does not fit."""
    try:
        size, i = varint(payload, 0)
        if not 1 <= size <= len(payload):
            raise BadRecord("header size")
        types = []
        while i < size:
            kind, i = varint(payload, i)
            types.append(kind)
    except IndexError as err:
        raise BadRecord("header") from err
    if i != size:
        raise BadRecord("header overruns")
    values: list[Value] = []
    pos = size
    for kind in types:
        if kind == 0 or kind in (8, 9):
            values.append(None if kind == 0 else kind - 8)
            continue
        if kind in (10, 11):
            raise BadRecord("reserved serial type")
        n = INT_SIZES[kind] if kind <= 6 else 8 if kind == 7 else (kind - 12 - kind % 2) // 2
        if pos + n > len(payload):
            raise BadRecord("body overruns")
        raw = payload[pos:pos + n]
        pos += n
        if kind <= 6:
            values.append(int.from_bytes(raw, "big", signed=True))
        elif kind == 7:
            values.append(struct.unpack(">d", raw)[0])
        elif kind % 2 == 0:
            values.append(bytes(raw))
        else:
            try:
                values.append(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                raise BadRecord("text") from err
    return values


class SqliteFile:
    """The pages of one database file (and of its WAL), read-only: `page(n)`, `table_cells(n)`.

    Raises NotSqlite for a file with no SQLite header and no page that reads as a b-tree page.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "rb")
        size = self._file.seek(0, 2)
        self._map: mmap.mmap | bytes = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        self.size = size
        head = bytes(self._map[:100])
        self.header_ok = head[:16] == MAGIC and _page_size(head) is not None
        self.wal: dict[int, bytes] = {}
        wal_size = self._read_wal(Path(f"{path}-wal"))
        self.page_size = _page_size(head) if self.header_ok else wal_size or self._guess_page_size()
        if self.page_size is None:
            self.close()
            raise NotSqlite(str(path))
        if wal_size != self.page_size:   # a WAL of another database, or none
            self.wal = {}
        first = self.page(1) or b""
        self.header_ok = first[:16] == MAGIC and _page_size(first) == self.page_size
        self.reserved = first[20] if self.header_ok and first[20] < 64 else 0
        self.usable = self.page_size - self.reserved
        pages = -(-size // self.page_size)
        self.count = max([pages, *self.wal])
        self.declared = _declared_pages(first) if self.header_ok else None
        self.overflow: set[int] = set()    # pages found holding overflow content

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()
        self._file.close()

    def __enter__(self) -> SqliteFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- pages --------------------------------------------------------------------
    def page(self, n: int) -> bytes | None:
        """Page N (from 1) as its newest committed version; a short last page is padded; None past the end."""
        if n in self.wal:
            return self.wal[n]
        size = self.page_size or 0
        start = (n - 1) * size
        if n < 1 or start >= self.size:
            return None
        data = bytes(self._map[start:start + size])
        return data if len(data) == size else data + bytes(size - len(data))

    def page_type(self, n: int) -> int | None:
        """The b-tree page type, if page N has a plausible b-tree page header; else None."""
        data = self.page(n)
        return None if data is None else _btree_type(data, 100 if n == 1 else 0, self.usable)

    def free_pages(self, limit: int) -> set[int]:
        """The pages on the free list, as the header says (none if the header is gone)."""
        first = self.page(1)
        free: set[int] = set()
        if not self.header_ok or first is None:
            return free
        trunk = struct.unpack_from(">I", first, 32)[0]
        while trunk and trunk not in free and len(free) < limit:
            free.add(trunk)
            data = self.page(trunk)
            if data is None:
                break
            nxt, leaves = struct.unpack_from(">II", data, 0)
            if leaves > (self.usable - 8) // 4:
                break
            free.update(n for n in struct.unpack_from(f">{leaves}I", data, 8) if 0 < n <= limit)
            trunk = nxt
        return free

    def table_cells(self, n: int) -> list[Cell | None] | None:
        """The cells of table leaf page N (None for a cell that does not decode), or None if it is not one."""
        data = self.page(n)
        off = 100 if n == 1 else 0
        if data is None or _btree_type(data, off, self.usable) != LEAF_TABLE:
            return None
        count = struct.unpack_from(">H", data, off + 3)[0]
        pointers = struct.unpack_from(f">{count}H", data, off + 8)
        return [self._cell(data, p) for p in pointers]

    def _cell(self, data: bytes, at: int) -> Cell | None:
        if not off_ok(at, self.usable):
            return None
        try:
            size, i = varint(data, at)
            rowid, i = varint(data, i)
            if rowid >= 1 << 63:
                rowid -= 1 << 64
            local = self._local(size)
            if i + local + (4 if local < size else 0) > self.usable:
                return None
            payload = data[i:i + local]
            if local < size:
                payload += self._overflow(struct.unpack_from(">I", data, i + local)[0], size - local)
            return rowid, record(payload)
        except (IndexError, BadRecord, struct.error):
            return None

    def _local(self, size: int) -> int:
        """How much of a table leaf cell's payload is on the page itself (the rest overflows)."""
        u = self.usable
        most = u - 35
        if size <= most:
            return size
        least = (u - 12) * 32 // 255 - 23
        k = least + (size - least) % (u - 4)
        return k if k <= most else least

    def _overflow(self, page: int, remaining: int) -> bytes:
        parts: list[bytes] = []
        seen: set[int] = set()
        while remaining > 0:
            data = self.page(page) if page not in seen else None
            if data is None:
                raise BadRecord("overflow chain broken")
            seen.add(page)
            chunk = data[4:4 + min(remaining, self.usable - 4)]
            parts.append(chunk)
            remaining -= len(chunk)
            page = struct.unpack_from(">I", data, 0)[0]
        self.overflow |= seen
        return b"".join(parts)

    # --- finding the layout -----------------------------------------------------
    def _guess_page_size(self) -> int | None:
        """The header is gone: the smallest page size at which (nearly) every page reads as a b-tree page."""
        shares: dict[int, float] = {}
        for size in PAGE_SIZES:
            pages = self.size // size
            if pages == 0:
                continue
            step = max(1, pages // SAMPLE)
            sample = [bytes(self._map[n * size:(n + 1) * size]) for n in range(0, pages, step)]
            used = [p for p in sample if p.strip(b"\0")]
            if used:  # a b-tree page, or an overflow page (it starts with the next page's number, or 0)
                shares[size] = sum(_btree_type(p, 0, size) is not None or _overflow_page(p, pages)
                                   for p in used) / len(used)
        best = max(shares.values(), default=0.0)
        if best < 0.05:
            return None
        return min(size for size, share in shares.items() if share >= 0.8 * best)

    def _read_wal(self, path: Path) -> int | None:
        """The pages of the WAL's committed transactions (checksums and salts valid); its page size."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if len(data) < 32:
            return None
        magic, _version, size, _seq, salt1, salt2 = struct.unpack_from(">6I", data, 0)
        if magic not in WAL_MAGICS or size not in PAGE_SIZES:
            return None
        order = ">" if magic & 1 else "<"
        sums = _checksum(data[:24], (0, 0), order)
        if sums != struct.unpack_from(">2I", data, 24):
            return None
        pending: dict[int, bytes] = {}
        at = 32
        while at + 24 + size <= len(data):
            page_no, commit, s1, s2, c1, c2 = struct.unpack_from(">6I", data, at)
            if (s1, s2) != (salt1, salt2):
                break
            page = data[at + 24:at + 24 + size]
            sums = _checksum(page, _checksum(data[at:at + 8], sums, order), order)
            if sums != (c1, c2):
                break
            if page_no:
                pending[page_no] = page
            if commit:
                self.wal.update(pending)
                pending = {}
            at += 24 + size
        return int(size)


def _overflow_page(data: bytes, pages: int) -> bool:
    """Plausibly an overflow page: its first four bytes name another page of the file, or none."""
    return struct.unpack_from(">I", data, 0)[0] <= pages and _btree_type(data, 0, len(data)) is None


def off_ok(at: int, usable: int) -> bool:
    return 8 <= at < usable


def _page_size(head: bytes) -> int | None:
    if len(head) < 100:
        return None
    raw = struct.unpack_from(">H", head, 16)[0]
    size = 65536 if raw == 1 else raw
    return size if size in PAGE_SIZES else None


def _declared_pages(head: bytes) -> int | None:
    """The header's page count, trusted only when it was written by a version that keeps it current."""
    change, count = struct.unpack_from(">II", head, 24)
    valid_for = struct.unpack_from(">I", head, 92)[0]
    return int(count) if count and change == valid_for else None


def _btree_type(data: bytes, off: int, usable: int) -> int | None:
    """The page's b-tree type if its header is consistent (cell count, pointers, content area)."""
    kind = data[off]
    if kind not in BTREE:
        return None
    freeblock, count, content, _frag = struct.unpack_from(">HHHB", data, off + 1)
    content = content or 65536
    pointers = off + (8 if kind in (LEAF_TABLE, LEAF_INDEX) else 12)
    end = pointers + 2 * count
    if end > usable or content > usable or (count and content < end):
        return None
    if freeblock and not end <= freeblock < usable:
        return None
    if any(not content <= p < usable for p in struct.unpack_from(f">{count}H", data, pointers)):
        return None
    return kind


def _checksum(data: bytes, sums: tuple[int, int], order: str) -> tuple[int, int]:
    """The WAL's running checksum over DATA (a multiple of 8 bytes), continued from SUMS."""
    s0, s1 = sums
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1
