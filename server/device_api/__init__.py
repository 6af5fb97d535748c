"""What validators and inspection devices call: the feeds (participant metadata, KDKs, stops,
the deny list, the whitelist, TICKLE macro sets), device keys for wallets, the fraud check,
and event ingest with online validation. Declared in :mod:`.handlers` and :mod:`.v3`."""
from . import v3  # noqa: F401  (registers the Validation API 3.0 additions on the surface)
from .handlers import api

__all__ = ["api"]
