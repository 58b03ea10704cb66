"""The setup page as PDF (fpdf2) or PostScript (written here: Helvetica text and filled squares)."""

from __future__ import annotations

from fpdf import FPDF

from meterbox.box.legend import Legend
from meterbox.box.setup_page.info import SetupInfo
from meterbox.box.setup_page.layout import PAGE_H, PAGE_W, Page, layout

FORMATS = {"pdf": "application/pdf", "ps": "application/postscript"}


def render(info: SetupInfo, legend: Legend, fmt: str) -> bytes:
    """The page in FMT ("pdf" or "ps")."""
    page = layout(info, legend)
    if fmt == "pdf":
        return pdf(page, info)
    if fmt == "ps":
        return postscript(page, info)
    raise ValueError(f"unknown page format {fmt!r}; use pdf or ps")


def pdf(page: Page, info: SetupInfo) -> bytes:
    doc = FPDF(unit="pt", format=(PAGE_W, PAGE_H))
    doc.set_title(f"meterbox setup page {info.box_id}")
    doc.set_creator("meterbox")
    doc.set_auto_page_break(False)
    doc.add_page()
    for t in page.texts:
        doc.set_font("helvetica", "B" if t.bold else "", t.size)
        doc.text(t.x, t.y, t.text)
    doc.set_fill_color(0, 0, 0)
    for b in page.boxes:
        doc.rect(b.x, b.y, b.w, b.h, style="F")
    return bytes(doc.output())


# Helvetica re-encoded to ISO Latin-1, so "é" prints as "é" (PostScript fonts default to StandardEncoding);
# with ASCII's "-" and "'" put back (ISOLatin1Encoding has minus and quoteright there).
_PROLOG = """%!PS-Adobe-3.0
%%Title: (meterbox setup page {box})
%%Creator: meterbox
%%Pages: 1
%%BoundingBox: 0 0 {w} {h}
%%DocumentNeededResources: font Helvetica Helvetica-Bold
%%EndComments
%%BeginProlog
/latin1 {{ findfont dup length dict begin {{ 1 index /FID ne {{ def }} {{ pop pop }} ifelse }} forall
  /Encoding ISOLatin1Encoding 256 array copy dup 45 /hyphen put dup 39 /quotesingle put def
  currentdict end definefont pop }} bind def
/Helvetica-L1 /Helvetica latin1
/Helvetica-Bold-L1 /Helvetica-Bold latin1
/T {{ moveto show }} bind def
/R {{ rectfill }} bind def
%%EndProlog
%%Page: 1 1
<< /PageSize [{w} {h}] >> setpagedevice
"""


def _ps_string(text: str) -> str:
    out = []
    for ch in text.encode("latin-1", "replace"):
        if ch in b"()\\":
            out.append("\\" + chr(ch))
        elif 32 <= ch < 127:
            out.append(chr(ch))
        else:
            out.append(f"\\{ch:03o}")
    return "(" + "".join(out) + ")"


def postscript(page: Page, info: SetupInfo) -> bytes:
    lines = [_PROLOG.format(box=info.box_id, w=int(PAGE_W), h=int(PAGE_H))]
    font = None
    for t in page.texts:
        want = ("/Helvetica-Bold-L1" if t.bold else "/Helvetica-L1", t.size)
        if want != font:
            lines.append(f"{want[0]} findfont {t.size:g} scalefont setfont")
            font = want
        lines.append(f"{_ps_string(t.text)} {t.x:.2f} {PAGE_H - t.y:.2f} T")
    lines.append("0 setgray")
    for b in page.boxes:
        lines.append(f"{b.x:.3f} {PAGE_H - b.y - b.h:.3f} {b.w:.3f} {b.h:.3f} R")
    lines += ["showpage", "%%EOF", ""]
    return "\n".join(lines).encode("latin-1")
