"""Data shipped with the package: the sample dataset (the seed article and its records)."""
