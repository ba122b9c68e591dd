"""Streamed exports of every resource as NDJSON, CSV, GeoJSON (incidents) and STIX 2.1."""
