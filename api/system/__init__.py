"""Endpoints about the service itself: health probes, API docs, the explorer page."""
