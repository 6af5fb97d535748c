"""The fleet view: devices report their state at each sync (``POST /device/state``); admins
see the latest of each, with its last contact (``GET /devices``; ``python -m server devices``).
Declared in :mod:`.handlers`."""
from .handlers import api

__all__ = ["api"]
