"""The digits models trained in seconds, and ``make demo``."""
