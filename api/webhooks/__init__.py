"""Webhooks: endpoints that receive the change feed over HTTP, signed per the Standard Webhooks
specification, in feed order, at least once (``controller``: the API; ``worker``: delivery in
the background of every server process; ``sender``: one signed attempt; ``addresses``: where a
delivery may go; ``events``: filters and message bodies; ``queries``: the SQL)."""
