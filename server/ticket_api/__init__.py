"""The BoB Ticket API v1: issuing (manifests, tickets, bundles), looking up, the life cycle
(freeze/thaw, refund, recover, revoke) and a ticket's events. Declared in :mod:`.handlers`."""
from .handlers import api

__all__ = ["api"]
