"""Revision history of every record."""
