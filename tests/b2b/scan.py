"""Scanning a ticket document as a validator's camera would: render the PDF page and decode
the Aztec symbol from the picture (pypdfium2 + zxing-cpp), never from the image we embedded."""
from __future__ import annotations

import pypdfium2
import zxingcpp


def scan_pdf(pdf: bytes, scale: float = 2.0) -> bytes:
    page = pypdfium2.PdfDocument(pdf)[0]
    found = zxingcpp.read_barcodes(page.render(scale=scale).to_pil(), formats=zxingcpp.BarcodeFormat.Aztec)
    assert len(found) == 1, f"{len(found)} Aztec symbols on the page"
    return found[0].bytes


def pdf_text(pdf: bytes) -> str:
    return pypdfium2.PdfDocument(pdf)[0].get_textpage().get_text_range()
