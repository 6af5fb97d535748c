"""What an operator's tooling calls: ``/health`` (liveness and the database) and ``/metrics``
(Prometheus text format). Declared in :mod:`.handlers`; the counters live in :mod:`.metrics`."""
from .handlers import api
from .metrics import Metrics, metrics_middleware

__all__ = ["Metrics", "api", "metrics_middleware"]
