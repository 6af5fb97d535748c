"""The BoB Product API: the operator's product catalogue (``products.json`` in the data
directory) through BoB's product filters, its categories, and manifests. Declared in
:mod:`.handlers`; the catalogue in :mod:`.catalogue`, the filters in :mod:`.filters`."""
from .handlers import api

__all__ = ["api"]
