"""The operator console: web pages for the back office, served by the same server under
``/console`` (:func:`make_console`, mounted by :mod:`server.app`).

Sign-in with the server's own credentials (admin, or the read-only ``support`` role), sessions
in the database, CSRF tokens on every form that changes something (:mod:`.session`); pages
rendered on the server from Jinja2 templates (:mod:`.render`), no script, every asset served
here (:mod:`.assets`). The pages: tickets (:mod:`.tickets`), the deny list (:mod:`.deny_list`),
activity (:mod:`.activity`); their reads are in :mod:`.queries`, their writes are the Ticket
API's state machine.
"""
from .app import PREFIX, make_console

__all__ = ["PREFIX", "make_console"]
