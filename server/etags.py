"""Strong ETags for bodies served as fixed bytes (participant metadata, stops, the OpenAPI
documents), and the ``If-None-Match`` check that answers 304 without the body."""
from __future__ import annotations

import hashlib

from .endpoint import Param, Reply

IF_NONE_MATCH = Param("If-None-Match", "header", {"type": "string"})
NOT_MODIFIED = Reply(None, "Not modified (If-None-Match matched the ETag)")


def strong_etag(body: bytes) -> str:
    """SHA-256 of the exact bytes served (128 bits of it), quoted."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags
