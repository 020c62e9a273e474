"""What each fleet task asks its executor for: CPUs and memory, estimated from the model's size.

    memory_mb = BASE_MB[kind] + PER_MODEL_MB[kind] * model_mb        (rounded up to 64 MB)

``BASE_MB`` is a task process's peak with a tiny model: Python + TensorFlow + the converters it
imports (LiteRT, ONNX Runtime, tf2onnx, OpenVINO), which dominates for small models.
``PER_MODEL_MB`` is how many copies of the model's bytes a task holds at its peak: the loaded
model, the frozen GraphDef (weights inlined as constants), the portable and runtime graphs, the
converter's own copy and the runtime that verifies the artifact.

Measured (``VmHWM`` of each task process, which a fresh process starts from zero; TF 2.21,
Linux x86-64, 1 task at a time on 2 shared cores; tests/fleet's three tiny models of < 0.1 MB —
a conv .keras, a SavedModel, a frozen .pb — to tflite + onnx fp32):

    task      peak RSS (MB)   wall (s)   note
    prepare   653 - 660       7.2 - 12.6  TF import + load + freeze + optimize + verify
    emit      683 - 697       7.2 - 25.1  tflite 7-11 s; onnx 16-25 s (tf2onnx runs in a child
                                          process whose memory this peak does not include)
    finish    689 - 700       6.7 - 8.3   reload the original + measure every artifact for the report

The base is the measured peak plus ~15% headroom; the per-model factors are the pipeline's copies
counted above (not measured on a large model here: treat them as an estimate to check against
the peaks each task reports, ``TaskRecord.peak_rss_mb``). Under Ray, a worker process is reused
between tasks, so its reported peak is the worker's so far.
"""

from __future__ import annotations

import math
import os

# Peak RSS of one task process with a tiny model, MB: measured (see the table above), with ~15% headroom.
MEASURED_MB = {"prepare": 660, "emit": 697, "finish": 700}
BASE_MB = {"prepare": 768, "emit": 832, "finish": 832}
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
