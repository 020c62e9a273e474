"""tfopt's version: the one place it is written (setup.cfg reads it; modules import it from here,
never from the package root, which would import the whole public API)."""

__version__ = "0.1.0"
