"""The box label: the claim QR code, with the box id and claim code in text beside it.

One layout (in millimetres) drawn three ways: SVG for the web and print shops, PNG for label
printers' drivers and tests (zbarimg reads it), PDF for a 62 x 29 mm label printer roll and
for an A4 sheet of labels. The QR code is segno's (pure Python, well kept); the PDF is fpdf2's
(pure Python, maintained, core fonts and vector rectangles without any native library).
"""

from __future__ import annotations

import io
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

import segno

from .mint import Identity

if TYPE_CHECKING:
    from fpdf import FPDF

LABEL_W, LABEL_H = 62.0, 29.0  # mm: Brother DK-11209 / 62 mm continuous roll
QUIET = 2  # modules of white around the code (the label's edge adds the rest)
PT = 25.4 / 72  # one typographic point in mm


@dataclass(frozen=True)
class Text:
    """One line of text: position of its baseline's left end (mm), size (pt), face."""

    x: float
    y: float
    size: float
    text: str
    mono: bool = False
    bold: bool = False


@dataclass(frozen=True)
class Layout:
    """Everything on one label, in mm from its top-left corner."""

    qr_x: float
    qr_y: float
    module: float
    matrix: list[list[bool]]
    texts: list[Text]


def claim_url(identity: Identity) -> str:
    """``https://<vendor>/claim?box=<id>&code=<claim code>``: what the QR code holds."""
    query = urllib.parse.urlencode({"box": identity.box, "code": identity.claim_code})
    return f"{identity.vendor.rstrip('/')}/claim?{query}"


def layout(identity: Identity) -> Layout:
    """The QR code on the left (as tall as the label allows), the words on the right."""
    qr = segno.make(claim_url(identity), error="m", micro=False)
    matrix = [[bool(v) for v in row] for row in qr.matrix]
    size = len(matrix) + 2 * QUIET
    module = (LABEL_H - 2.0) / size
    left = 1.0 + QUIET * module
    x = 1.0 + size * module + 1.0
    host = urllib.parse.urlsplit(identity.vendor).netloc
    return Layout(qr_x=left, qr_y=1.0 + QUIET * module, module=module, matrix=matrix, texts=[
        Text(x, 5.5, 9, "meterbox", bold=True),
        Text(x, 9.0, 5.5, "Scan to connect this box"),
        Text(x, 13.5, 5, "BOX ID"),
        Text(x, 17.2, 10, identity.box, mono=True, bold=True),
        Text(x, 20.8, 5, "CLAIM CODE"),
        Text(x, 24.4, 9, identity.claim_code, mono=True, bold=True),
        Text(x, 27.6, 5, f"no camera? {host}/claim"),
    ])


def _runs(row: list[bool]) -> list[tuple[int, int]]:
    """(start, length) of each run of dark modules: fewer, larger rectangles to draw."""
    runs, start = [], None
    for i, dark in enumerate([*row, False]):
        if dark and start is None:
            start = i
        elif not dark and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def svg(identity: Identity) -> str:
    """The label as a standalone SVG document in mm."""
    lay = layout(identity)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_W}mm" height="{LABEL_H}mm" '
             f'viewBox="0 0 {LABEL_W} {LABEL_H}">', f'<rect width="{LABEL_W}" height="{LABEL_H}" fill="#fff"/>']
    path = []
    for r, row in enumerate(lay.matrix):
        for start, length in _runs(row):
            x, y = lay.qr_x + start * lay.module, lay.qr_y + r * lay.module
            path.append(f"M{x:.3f} {y:.3f}h{length * lay.module:.3f}v{lay.module:.3f}h{-length * lay.module:.3f}z")
    parts.append(f'<path d="{"".join(path)}" fill="#000" shape-rendering="crispEdges"/>')
    for t in lay.texts:
        family = "DejaVu Sans Mono, Courier New, monospace" if t.mono else "DejaVu Sans, Helvetica, Arial, sans-serif"
        weight = ' font-weight="bold"' if t.bold else ""
        parts.append(f'<text x="{t.x:.2f}" y="{t.y:.2f}" font-family="{family}" font-size="{t.size * PT:.3f}"'
                     f'{weight}>{escape(t.text)}</text>')
    parts.append("</svg>\n")
    return "\n".join(parts)


_FONTS = {(False, False): "DejaVuSans.ttf", (False, True): "DejaVuSans-Bold.ttf",
          (True, False): "DejaVuSansMono.ttf", (True, True): "DejaVuSansMono-Bold.ttf"}
_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def png(identity: Identity, dpi: int = 300) -> bytes:
    """The label as a PNG at ``dpi`` (300 suits thermal label printers), modules on whole pixels."""
    from PIL import Image, ImageDraw, ImageFont  # fpdf2 brings Pillow along

    lay = layout(identity)
    px = dpi / 25.4
    image = Image.new("1", (round(LABEL_W * px), round(LABEL_H * px)), 1)
    draw = ImageDraw.Draw(image)
    module = max(1, int(lay.module * px))  # whole pixels keep every module the same size
    ox, oy = round(lay.qr_x * px), round(lay.qr_y * px)
    for r, row in enumerate(lay.matrix):
        for start, length in _runs(row):
            x, y = ox + start * module, oy + r * module
            draw.rectangle([x, y, x + length * module - 1, y + module - 1], fill=0)
    for t in lay.texts:
        size = max(6, round(t.size * PT * px))
        path = _FONT_DIR / _FONTS[(t.mono, t.bold)]
        font = ImageFont.truetype(str(path), size) if path.exists() else ImageFont.load_default(size)
        draw.text((t.x * px, t.y * px), t.text, font=font, fill=0, anchor="ls")
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(dpi, dpi))
    return out.getvalue()


def _draw_pdf(pdf: "FPDF", identity: Identity, ox: float, oy: float) -> None:
    lay = layout(identity)
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(lay.matrix):
        for start, length in _runs(row):
            pdf.rect(ox + lay.qr_x + start * lay.module, oy + lay.qr_y + r * lay.module,
                     length * lay.module, lay.module, style="F")
    for t in lay.texts:
        pdf.set_font("courier" if t.mono else "helvetica", "B" if t.bold else "", t.size)
        pdf.text(ox + t.x, oy + t.y, t.text)


def _new_pdf(width: float, height: float) -> "FPDF":
    from fpdf import FPDF

    pdf = FPDF(orientation="L" if width > height else "P", unit="mm", format=(min(width, height), max(width, height)))
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    pdf.set_creator("meterbox-factory")
    return pdf


def pdf(identity: Identity) -> bytes:
    """One label on a 62 x 29 mm page, for a label printer."""
    doc = _new_pdf(LABEL_W, LABEL_H)
    doc.add_page()
    _draw_pdf(doc, identity, 0, 0)
    return bytes(doc.output())


SHEET_COLUMNS, SHEET_ROWS = 3, 9  # 27 labels of 62 x 29 mm on A4, 12 mm and 18 mm margins
A4_W, A4_H = 210.0, 297.0


def sheet(identities: list[Identity]) -> bytes:
    """A4 pages of labels with thin grey cut lines, in box id order."""
    doc = _new_pdf(A4_W, A4_H)
    left = (A4_W - SHEET_COLUMNS * LABEL_W) / 2
    top = (A4_H - SHEET_ROWS * LABEL_H) / 2
    per_page = SHEET_COLUMNS * SHEET_ROWS
    for i, identity in enumerate(identities):
        if i % per_page == 0:
            doc.add_page()
        col, row = i % SHEET_COLUMNS, (i % per_page) // SHEET_COLUMNS
        ox, oy = left + col * LABEL_W, top + row * LABEL_H
        doc.set_draw_color(190, 190, 190)
        doc.set_line_width(0.1)
        doc.rect(ox, oy, LABEL_W, LABEL_H)
        _draw_pdf(doc, identity, ox, oy)
    return bytes(doc.output())


def write(identity: Identity, out: Path) -> None:
    """Write the label in the format the file name asks for (.svg, .png or .pdf)."""
    suffix = out.suffix.lower()
    if suffix == ".svg":
        out.write_text(svg(identity))
    elif suffix == ".png":
        out.write_bytes(png(identity))
    elif suffix == ".pdf":
        out.write_bytes(pdf(identity))
    else:
        raise ValueError(f"{out}: a label is written as .svg, .png or .pdf, not {suffix or 'no suffix'}")
