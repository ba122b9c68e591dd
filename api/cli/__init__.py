"""The ``secevents`` command and its sub-commands."""
