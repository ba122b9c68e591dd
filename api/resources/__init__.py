"""One package per resource: ``controller.py`` (HTTP handlers) and ``queries.py`` (its SQL)."""
