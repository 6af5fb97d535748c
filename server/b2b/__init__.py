"""The JobTicket B2B API: the employer side (companies, API keys, employees and their
subscriptions, monthly job tickets issued through the Ticket API, documents, HR sync,
webhooks). :func:`server.b2b.app.install` mounts it; ``server/b2b/README.md`` says what it
decides where the public pages are silent; its settings are
:class:`server.config.B2BConfig`."""
