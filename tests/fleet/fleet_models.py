"""A small fleet on disk for the fleet's tests: three tiny models of three formats (.keras to ONNX,
a SavedModel directory and a frozen .pb to TFLite), a model whose calibration kills its worker, one
whose hangs."""

from __future__ import annotations

import os

import yaml

CRASH = '''
import os


def fn():
    os._exit(3)  # the worker process dies without a word: what a segfaulting converter looks like
'''

HANG = '''
import time


def fn():
    time.sleep(3600)
'''


def build_fleet(root) -> str:
    """Write the models and ``fleet.yaml`` into ``root``; the manifest's path."""
    import keras

    from tests.helpers import graph_pb

    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(4, 3, activation="relu")(x)
    keras.Model(x, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(h))).save(
        str(root / "conv.keras"))
    v = keras.Input((6,), name="v")
    keras.Model(v, keras.layers.Dense(2)(keras.layers.Dense(5, activation="tanh")(v))).export(
        str(root / "dense_sm"), verbose=False)

    def mlp(tf):
        a = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        w = tf.constant([[0.5, -1.0, 0.25], [1.0, 0.5, -0.5], [-0.25, 0.75, 1.0], [0.1, 0.2, 0.3]])
        tf.nn.relu(tf.matmul(a, w) + tf.constant([0.1, -0.2, 0.3]), name="y")

    graph_pb(root / "mlp.pb", mlp)
    (root / "crashmod.py").write_text(CRASH)
    (root / "hangmod.py").write_text(HANG)
    manifest = {
        # ONNX for the model that tests/fleet/test_run.py converts in worker processes: an ONNX emit
        # task starts a second process (the tf2onnx child); the emit task is the same for every
        # target (the target table's emit), and TFLite's runs in worker processes in
        # tests/test_scripts.py's fleet script test
        "defaults": {"to": "tflite", "report_runs": 1},
        "models": [
            {"name": "conv", "path": "conv.keras", "to": "onnx"},
            {"name": "dense", "path": "dense_sm"},
            {"name": "mlp", "path": "mlp.pb"},
            {"name": "crash", "path": "conv.keras", "calibration": "crashmod:fn"},
            {"name": "hang", "path": "conv.keras", "calibration": "hangmod:fn"},
        ],
    }
    path = os.path.join(str(root), "fleet.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(manifest, f)
    return path


def files_of(directory: str) -> dict[str, bytes]:
    """Every file under ``directory`` but the reports and the stamp (they hold times): relative path -> bytes."""
    out = {}
    for d, _, files in os.walk(directory):
        for name in files:
            rel = os.path.relpath(os.path.join(d, name), directory)
            if not rel.startswith("report.") and rel != ".fleet-stamp.json":
                with open(os.path.join(d, name), "rb") as f:
                    out[rel] = f.read()
    return out


def run_tasks_here(manifest, outroot, cache, name):
    """Every task of model ``name`` in this process (:func:`tfopt.fleet.tasks.run_task`, what each
    worker runs), in order (prepare, emits, finish): task id -> outcome, and the driver's shortcut for
    each emit (what ``run_fleet`` would serve from the cache)."""
    from tfopt.fleet.manifest import fingerprint, load_manifest
    from tfopt.fleet.plan import model_tasks
    from tfopt.fleet.run import cached_emit
    from tfopt.fleet.tasks import run_task

    os.makedirs(str(outroot), exist_ok=True)
    [model] = [m for m in load_manifest(str(manifest)) if m.name == name]
    tasks = model_tasks(model, 0, os.path.join(str(outroot), name), stamp=fingerprint(model.options), cache=cache,
                        logs=os.path.join(str(outroot), "logs"), overwrite=True)
    outcomes, shortcuts = {}, {}
    cwd = os.getcwd()
    try:
        for task in tasks:
            if task.kind == "emit":
                shortcuts[task.id] = cached_emit(task, outcomes)
            outcomes[task.id] = run_task(task.spec)
    finally:
        os.chdir(cwd)
    return {"outcomes": outcomes, "shortcuts": shortcuts, "outdir": os.path.join(str(outroot), name)}
