"""The device's link to the ticket server: feeds down, events up, when the network allows.

The agent decides offline; sync only moves data. ``client`` speaks HTTP (token, TLS, the
request budget), ``feeds`` holds one adapter per feed, ``uploader`` sends the outbox in
batches, ``syncer`` runs them on their schedules and raises the link's alarms, ``status``
keeps each one's state in the cache, ``pacing`` decides when anything may be sent.
"""
from .client import ServerClient, basic_auth
from .errors import AuthFailed, BadFeedData, RateLimited, Rejected, SyncError, TlsRefused, Transient
from .feeds import (CursorFeed, DenyListFeed, EtagFeed, Feed, KdkFeed, ParticipantMetadataFeed, StopsFeed,
                    TickleMacrosFeed, UsesFeed, deny_entries, fleet_uses, tickle_sets)
from .pacing import Backoff, Clock, RequestBudget, SystemClock, retry_after
from .status import SyncStatus
from .syncer import Syncer
from .tls import TlsSettings
from .uploader import Uploader

__all__ = ["AuthFailed", "Backoff", "BadFeedData", "Clock", "CursorFeed", "DenyListFeed", "EtagFeed", "Feed",
           "KdkFeed", "ParticipantMetadataFeed", "RateLimited", "Rejected", "RequestBudget", "ServerClient",
           "StopsFeed", "SyncError", "SyncStatus", "Syncer", "SystemClock", "TickleMacrosFeed", "TlsRefused",
           "TlsSettings", "Transient", "Uploader", "UsesFeed", "basic_auth", "deny_entries", "fleet_uses",
           "retry_after", "tickle_sets"]
