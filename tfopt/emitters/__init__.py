"""Emitters: one module per target, one signature: ``emit_X(model, path, *, options)``."""
