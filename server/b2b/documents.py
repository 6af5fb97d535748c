"""The monthly ticket document: a one-page PDF with the employee's name, the validity, the
zones and modes, and the MTB as an Aztec code a validator scans.

Made with maintained libraries, no hand-written PDF or barcode code: reportlab draws the page
(a TrueType font registered once per process and subset into each document, so names in any
script the font covers print as written), zxing-cpp encodes the Aztec symbol. The symbol holds
the MTB as the MTB format's transport section says a barcode does: the raw zlib-compressed
container bytes (binary mode), 23% error correction (zxing-cpp's default). The symbol is drawn
as an image at a fixed module size (0.5 mm per module, at least 40 mm wide) with a quiet zone.

Font: ``b2b.document_font`` in the server config (a .ttf path), else DejaVu Sans where the
system has it, else the Bitstream Vera that ships inside reportlab (Latin-1 only).
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import zxingcpp
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

import reportlab

FONT_NAME = "B2BDocument"
SYSTEM_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                "/usr/local/share/fonts/DejaVuSans.ttf", "/Library/Fonts/DejaVuSans.ttf")
BUNDLED_FONT = Path(reportlab.__file__).parent / "fonts" / "Vera.ttf"
MODULE_MM = 0.5
MIN_SYMBOL_MM = 40.0
_lock = threading.Lock()  # reportlab keeps state in module globals: one render at a time per process
_font_path: str | None = None


def font_path(configured: str | None = None) -> str:
    if configured:
        if not Path(configured).is_file():
            raise ValueError(f"document font {configured!r} does not exist")
        return configured
    return next((p for p in SYSTEM_FONTS if Path(p).is_file()), str(BUNDLED_FONT))


def _register_font(path: str) -> None:
    """Register the font once per process (parsing a TrueType font is the slow part); under
    :data:`_lock`."""
    global _font_path
    if _font_path != path:
        pdfmetrics.registerFont(TTFont(FONT_NAME, path))
        _font_path = path


@dataclass(frozen=True)
class TicketDocument:
    """What goes on the page."""

    title: str  # "May 2024 Job Ticket"
    company: str
    employee_name: str
    ticket_id: str
    valid_from: date
    valid_until: date  # last day
    timezone: str
    zones: tuple[str, ...]
    modes: tuple[str, ...]
    barcode: bytes  # the zlib-compressed MTB container


def aztec_image(data: bytes) -> Image.Image:
    """The Aztec symbol of ``data`` (binary), one pixel per module, with its quiet zone."""
    symbol = zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.Aztec)
    bitmap = symbol.to_image(scale=1, add_quiet_zones=True)
    height, width = bitmap.shape[0], bitmap.shape[1]
    return Image.frombytes("L", (width, height), bytes(bitmap))


def render(doc: TicketDocument, font: str | None = None) -> bytes:
    """The PDF bytes. Threads render one after another (reportlab is not thread-safe: two
    documents at once in one process corrupt each other's fonts); processes render in parallel."""
    with _lock:
        return _render(doc, font_path(font))


def _render(doc: TicketDocument, font: str) -> bytes:
    _register_font(font)
    symbol = aztec_image(doc.barcode)
    side = max(MIN_SYMBOL_MM, symbol.width * MODULE_MM) * mm
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4, invariant=True)
    page.setTitle(doc.title)
    page.setAuthor(doc.company)
    page.setSubject(f"Job ticket {doc.ticket_id}")
    width, height = A4
    left, y = 20 * mm, height - 25 * mm
    page.setFont(FONT_NAME, 20)
    page.drawString(left, y, doc.title)
    page.setFont(FONT_NAME, 11)
    lines = [
        ("Employee", doc.employee_name),
        ("Employer", doc.company),
        ("Valid", f"{doc.valid_from.isoformat()} to {doc.valid_until.isoformat()} ({doc.timezone})"),
        ("Zones", ", ".join(doc.zones) or "all"),
        ("Modes", ", ".join(doc.modes) or "all"),
        ("Ticket", doc.ticket_id),
    ]
    for label, value in lines:
        y -= 8 * mm
        page.drawString(left, y, f"{label}:")
        page.drawString(left + 28 * mm, y, value)
    top = y - 12 * mm
    page.drawImage(ImageReader(symbol), (width - side) / 2, top - side, side, side)
    page.setFont(FONT_NAME, 8)
    page.drawCentredString(width / 2, top - side - 6 * mm, "Show this code at the validator. It is personal and "
                                                             "valid only with an ID.")
    page.showPage()
    page.save()
    return out.getvalue()
