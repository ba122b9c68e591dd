"""The secevents HTTP server (Litestar). Build it with :func:`api.app.create_app`."""
