"""What validators and inspection devices call: the feeds (participant metadata, KDKs, stops,
the deny list), device keys for wallets, and event ingest. Declared in :mod:`.handlers`."""
from .handlers import api

__all__ = ["api"]
