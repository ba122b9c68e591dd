"""SQL helpers shared by the resources: revisions, citations, partial updates."""
