"""The bundled BoB ticket server (aiohttp): Ticket API v1, device feeds, event ingest.

Start with ``python -m server init --data DIR`` then ``python -m server --data DIR``; the
application factory is :func:`server.app.make_app`.
"""
