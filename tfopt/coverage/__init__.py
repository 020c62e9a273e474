"""Model coverage: which models convert to which target (``scripts/coverage.py``)."""
