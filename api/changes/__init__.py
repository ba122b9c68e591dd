"""The change feed: every create, update and delete in commit order."""
