"""The committed OpenAPI spec and the generator that writes the SDK from it (a repository tool, not installed)."""
