"""Where everything goes on the A4 setup page, in points from the top-left; drawn by render.py as PDF or PostScript.

Text is measured with Helvetica's metrics (fpdf2's core-font tables), which are the same in
every PostScript printer, so one layout serves both formats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import segno
from fpdf import FPDF

from meterbox.box.legend import Legend, led_rows
from meterbox.box.setup_page.info import SetupInfo, state_words

PAGE_W, PAGE_H = 595.0, 842.0  # A4 in points
MARGIN = 48.0
QR_SIZE = 130.0                 # points: ~46 mm, easy for a phone at arm's length
MAX_PRINTERS = 18


@dataclass(frozen=True)
class Text:
    x: float
    y: float        # baseline
    size: float
    text: str
    bold: bool = False


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float


@dataclass
class Page:
    texts: list[Text] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)


def latin1(text: str) -> str:
    """The core fonts are Latin-1: typographic characters become their plain forms, others '?'."""
    plain = text.translate({0x2013: "-", 0x2014: "-", 0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"',
                            0x2026: "...", 0x2192: "->"})
    return plain.encode("latin-1", "replace").decode("latin-1")


class _Writer:
    """Places lines top to bottom, wrapping at the column width."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.y = MARGIN
        self._measure = FPDF(unit="pt")
        self._measure.add_page()

    def width(self, text: str, size: float, bold: bool = False) -> float:
        self._measure.set_font("helvetica", "B" if bold else "", size)
        return float(self._measure.get_string_width(text))

    def line(self, text: str, size: float = 10, *, bold: bool = False, x: float = MARGIN,
             right: float = PAGE_W - MARGIN, gap: float = 1.35) -> None:
        for part in self.wrap(latin1(text), size, right - x, bold):
            self.y += size * gap
            self.page.texts.append(Text(x, self.y, size, part, bold))

    def wrap(self, text: str, size: float, width: float, bold: bool) -> list[str]:
        lines, current = [], ""
        for word in self._split_long(text.split(), size, width, bold):
            trial = f"{current} {word}".strip()
            if current and self.width(trial, size, bold) > width:
                lines.append(current)
                current = word
            else:
                current = trial
        return lines + [current] if current else lines

    def _split_long(self, words: list[str], size: float, width: float, bold: bool) -> list[str]:
        """A word wider than the column (a URL) is cut into pieces that fit."""
        out = []
        for word in words:
            while self.width(word, size, bold) > width:
                cut = len(word)
                while cut > 1 and self.width(word[:cut], size, bold) > width:
                    cut -= 1
                out.append(word[:cut])
                word = word[cut:]
            out.append(word)
        return out

    def row(self, cells: list[str], xs: list[float], size: float = 9, bold: bool = False) -> None:
        self.y += size * 1.4
        for cell, x, nxt in zip(cells, xs, xs[1:] + [PAGE_W - MARGIN]):
            text, limit = latin1(cell), nxt - x - 6
            if self.width(text, size, bold) > limit:
                while text and self.width(text + "...", size, bold) > limit:
                    text = text[:-1]
                text += "..."
            self.page.texts.append(Text(x, self.y, size, text, bold))

    def space(self, points: float) -> None:
        self.y += points


def qr(url: str, page: Page, x: float, y: float, size: float) -> None:
    """The QR code as filled squares (runs of dark modules per row): sharp at any resolution."""
    matrix = [[bool(v) for v in row] for row in segno.make(url, error="m", micro=False).matrix]
    quiet = 4
    module = size / (len(matrix) + 2 * quiet)
    for r, row in enumerate(matrix):
        c = 0
        while c < len(row):
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                page.boxes.append(Box(x + (start + quiet) * module, y + (r + quiet) * module,
                                      (c - start) * module, module))
            else:
                c += 1


def layout(info: SetupInfo, legend: Legend) -> Page:
    """The page: header, state, QR code (right), printers, LED legend, button."""
    page = Page()
    w = _Writer(page)
    text_right = PAGE_W - MARGIN - QR_SIZE - 12
    w.line("meterbox setup page", 22, bold=True, right=text_right)
    w.space(6)
    w.line(f"Box {info.box_id}", 16, bold=True, right=text_right)
    printed = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.printed_at))
    w.line(f"Firmware {info.firmware}    printed {printed}", 9, right=text_right)
    w.space(8)
    w.line("State", 11, bold=True, right=text_right)
    for sentence in state_words(info, legend):
        w.line(sentence, 10, right=text_right)
    last = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.last_upload)) if info.last_upload else "never"
    w.line(f"Last upload to the vendor: {last}", 10, right=text_right)
    if info.qr_url:
        top = MARGIN
        qr(info.qr_url, page, PAGE_W - MARGIN - QR_SIZE, top, QR_SIZE)
        cap = _Writer(page)
        cap.y = top + QR_SIZE
        cap.line(info.qr_caption, 8, bold=True, x=PAGE_W - MARGIN - QR_SIZE)
        cap.line(info.qr_url, 7, x=PAGE_W - MARGIN - QR_SIZE)
        w.y = max(w.y, cap.y)
    w.space(14)
    _printers(w, info)
    w.space(14)
    _legend(w, legend)
    return page


def _printers(w: _Writer, info: SetupInfo) -> None:
    w.line(f"Printers found: {len(info.printers)}", 11, bold=True)
    if not info.printers:
        w.line("None yet. The box looks for printers on its own network every hour.", 9)
        return
    xs = [MARGIN, MARGIN + 190, MARGIN + 300, MARGIN + 410]
    w.row(["Model", "Serial", "Address", "Enrolled"], xs, bold=True)
    for p in info.printers[:MAX_PRINTERS]:
        w.row([p.model, p.serial or "-", p.address, "enrolled" if p.enrolled else "not enrolled"], xs)
    if len(info.printers) > MAX_PRINTERS:
        w.line(f"... and {len(info.printers) - MAX_PRINTERS} more: see `meterbox status`.", 9)
    w.line("Addresses are printed here only; they never leave the building.", 8)


def _legend(w: _Writer, legend: Legend) -> None:
    w.line("What the lights mean", 11, bold=True)
    for led, words, meaning in led_rows(legend):
        w.line(f"{led.capitalize()}, {words}: {meaning}", 8)
    w.space(6)
    w.line("Red blink codes", 10, bold=True)
    for f in legend.faults:
        w.line(f"{f.blinks} blinks: {f.title}. {f.meaning} What to do: {f.action}", 8)
    w.space(6)
    w.line("The button", 10, bold=True)
    for text in (legend.button.press, legend.button.hold, legend.button.reset):
        w.line(text, 8)
