"""Hand-written SDK extensions: the generator (openapi/generate.py) never writes here."""
