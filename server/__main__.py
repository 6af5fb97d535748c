"""``python -m server``: see :mod:`server.cli`."""
import sys

from .cli import main

sys.exit(main())
