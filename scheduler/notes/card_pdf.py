"""Cards and address labels as print-ready PDFs (WeasyPrint, imported only here and only when a
PDF is written, so other commands start without it).

Layouts:
- A card is one A4 page, printed on one side and folded in four to an A6 card (105 x 148.5 mm):
  fold the top half back, then fold the card in half from right to left. The top half is
  printed upside down so that, folded, the front (top left) and back (top right) read the
  right way up; the bottom right is the inside page with the message, the bottom left the
  inside of the front (left blank for the owner's own words).
- Labels are Avery L7159 (and compatible): A4, 3 columns by 8 rows of 63.5 x 33.9 mm, 24 a
  sheet. Lines of an address too long for a label are cut with an ellipsis; an address of
  more than LABEL_LINES lines gets no label (the caller leaves it out).

What goes in is HTML already escaped (the card's blocks come from the sandboxed templates);
labels are plain text, escaped here. A PDF is never written over a file: `write_pdf` creates it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from scheduler.errors import AppreciateError

LABELS_PER_SHEET = 24
LABEL_COLUMNS = 3
LABEL_WIDTH_MM, LABEL_HEIGHT_MM = 63.5, 33.9
LABEL_LEFT_MM, LABEL_TOP_MM = 7.25, 12.9
LABEL_PITCH_MM = 66.0
"""Across: label width plus the 2.5 mm gap between columns (rows touch)."""
LABEL_LINES = 7
"""The lines a label shows whole (9.5 pt type, 1.25 line height, below a 4 mm top margin)."""


class PdfUnavailable(RuntimeError):
    """WeasyPrint (or the Pango library it needs) cannot be loaded."""


class PdfNotWritten(AppreciateError, OSError):
    """The cards' folder (`--out`) cannot be made or written to; nothing was marked printed."""

    def __init__(self, folder: Path, reason: str) -> None:
        self.folder = folder
        self.reason = reason
        super().__init__(
            f"cannot write the cards' PDFs into --out {folder}: {reason}; "
            "nothing was marked printed"
        )


@dataclass(frozen=True)
class CardPage:
    """One card: its front and inside, as HTML; `back` is a line of plain text."""

    front: Markup
    inside: Markup
    back: str


_CARD_CSS = """
@page { size: A4 portrait; margin: 0; }
html, body { margin: 0; padding: 0; }
body { font-family: "DejaVu Serif", Georgia, serif; color: #222; }
.sheet { position: relative; width: 210mm; height: 297mm; page-break-after: always; }
.sheet:last-child { page-break-after: auto; }
.panel { position: absolute; width: 105mm; height: 148.5mm; box-sizing: border-box;
         padding: 14mm 11mm; overflow: hidden; }
.top { top: 0; transform: rotate(180deg); }
.bottom { top: 148.5mm; }
.left { left: 0; }
.right { left: 105mm; }
.front { display: flex; flex-direction: column; justify-content: center; text-align: center;
         font-size: 20pt; }
.front h1 { font-size: 26pt; font-weight: normal; margin: 0 0 6mm 0; }
.back { display: flex; align-items: flex-end; justify-content: center; font-size: 8pt;
        color: #777; }
.inside { font-size: 12pt; line-height: 1.45; }
.inside p { margin: 0 0 4mm 0; }
"""

_LABEL_CSS = f"""
@page {{ size: A4 portrait; margin: 0; }}
html, body {{ margin: 0; padding: 0; }}
body {{ font-family: "DejaVu Sans", Arial, sans-serif; font-size: 9.5pt; line-height: 1.25; }}
.sheet {{ position: relative; width: 210mm; height: 297mm; page-break-after: always; }}
.sheet:last-child {{ page-break-after: auto; }}
.label {{ position: absolute; width: {LABEL_WIDTH_MM}mm; height: {LABEL_HEIGHT_MM}mm;
          box-sizing: border-box; padding: 4mm 5mm; overflow: hidden; }}
.label div {{ white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
"""


def cards_html(cards: Sequence[CardPage]) -> str:
    """The cards as one HTML document, a page each."""
    sheets = []
    for card in cards:
        sheets.append(
            '<div class="sheet">'
            f'<div class="panel top left front">{card.front}</div>'
            f'<div class="panel top right back"><div>{escape(card.back)}</div></div>'
            '<div class="panel bottom left"></div>'
            f'<div class="panel bottom right inside">{card.inside}</div>'
            "</div>"
        )
    return _document(_CARD_CSS, "".join(sheets))


def labels_html(addresses: Sequence[Sequence[str]]) -> str:
    """Address labels (each a few lines of text) as one HTML document, 24 to a page."""
    sheets = []
    for start in range(0, len(addresses), LABELS_PER_SHEET):
        labels = []
        for index, lines in enumerate(addresses[start : start + LABELS_PER_SHEET]):
            row, column = divmod(index, LABEL_COLUMNS)
            left = LABEL_LEFT_MM + column * LABEL_PITCH_MM
            top = LABEL_TOP_MM + row * LABEL_HEIGHT_MM
            text = "".join(f"<div>{escape(line)}</div>" for line in lines)
            labels.append(f'<div class="label" style="left: {left}mm; top: {top}mm">{text}</div>')
        sheets.append(f'<div class="sheet">{"".join(labels)}</div>')
    return _document(_LABEL_CSS, "".join(sheets))


def _document(css: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<style>{css}</style></head><body>{body}</body></html>"
    )


def write_pdf(html: str, path: Path) -> None:
    """Write `html` as a new PDF at `path`, never over a file (FileExistsError). Raises
    PdfUnavailable when WeasyPrint cannot load; a PDF left half-written is removed."""
    try:
        from weasyprint import HTML  # noqa: PLC0415 - heavy, and only cards need it
    except (ImportError, OSError) as error:
        raise PdfUnavailable(
            f"cannot make PDFs: WeasyPrint did not load ({error}); it needs Pango "
            "(Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0)"
        ) from None
    document = HTML(string=html).render()
    with path.open("xb") as file:
        try:
            document.write_pdf(file)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
