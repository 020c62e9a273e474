"""Verification: the inputs a model is run on (data, calibration, made-up), the comparison, its tolerances."""
