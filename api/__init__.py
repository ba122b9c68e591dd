"""The secevents HTTP server (Litestar). Build it with :func:`secevents.server.app.create_app`."""
