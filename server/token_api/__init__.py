"""The BoB Token API: the tokens (phones, cards) the server knows and the revoked ones (the
deny list's token entries). Declared in :mod:`.handlers`."""
from .handlers import api

__all__ = ["api"]
