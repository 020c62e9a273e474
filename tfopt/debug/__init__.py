"""``tfopt debug``: find where an artifact diverges from TensorFlow, and the smallest graph that still breaks a converter."""
