"""Shared fixtures: real TensorFlow models built in the test session (nothing downloaded)."""

from __future__ import annotations

import os
import re
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from tfopt._tf import tf
from tfopt.demos import examples


@pytest.fixture(scope="session")
def digits_test():
    _, _, x_test, y_test = examples.digits()
    return x_test[:64], y_test[:64]


def _stale_checkpoint_state(directory: str) -> None:
    """Point the `checkpoint` state file at the training machine's (absent) absolute paths."""
    state = os.path.join(directory, "checkpoint")
    with open(state) as f:
        text = f.read()
    text = re.sub(r'"[^"]*?([^/"]+)"', r'"/nonexistent/training-box/run7/\1"', text)
    with open(state, "w") as f:
        f.write(text)


@pytest.fixture(scope="session")
def tf1_ckpt(tmp_path_factory):
    """TF1 graph: ref variables, Switch/Merge cond on is_training, Adam; stale checkpoint paths."""
    ckpt = examples.train_tf1_checkpoint(str(tmp_path_factory.mktemp("tf1") / "train"), steps=40)
    _stale_checkpoint_state(ckpt.directory)
    return ckpt


@pytest.fixture(scope="session")
def tf1_ckpt_resource(tmp_path_factory):
    """The same graph with resource variables and functional (If) control flow."""
    return examples.train_tf1_checkpoint(str(tmp_path_factory.mktemp("tf1r") / "train"), steps=20,
                                         resource_variables=True, v1_control_flow=False)


def saver_predict(ckpt, x: np.ndarray) -> np.ndarray:
    """Ground truth: TensorFlow's own Saver restore, is_training=False."""
    t = tf()
    graph = t.Graph()
    with graph.as_default():
        saver = t.compat.v1.train.import_meta_graph(ckpt.meta)
        with t.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, ckpt.prefix)
            return sess.run("probs:0", {"images:0": x, "is_training:0": False})


@pytest.fixture
def copy_tree(tmp_path):
    """Copy a model directory into this test's tmp dir (for tests that alter files)."""
    def _copy(src: str) -> str:
        dst = tmp_path / os.path.basename(src.rstrip("/"))
        shutil.copytree(src, dst)
        return str(dst)
    return _copy


def snapshot(path: str) -> dict[str, tuple[int, float]]:
    """(size, mtime) of every file under ``path``: proves inputs were left untouched."""
    if os.path.isfile(path):
        st = os.stat(path)
        return {path: (st.st_size, st.st_mtime)}
    return {os.path.join(d, f): (os.stat(os.path.join(d, f)).st_size, os.stat(os.path.join(d, f)).st_mtime)
            for d, _, files in os.walk(path) for f in files}


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory):
    """A Keras digits CNN trained for a few epochs, as a SavedModel, with calibration and eval data."""
    model = examples.train_keras_cnn(epochs=15)
    root = tmp_path_factory.mktemp("digits_model")
    model.export(str(root / "sm"), verbose=False)
    x_train, _, x_test, y_test = examples.digits()
    np.savez(root / "calib.npz", images=x_train[:100])
    np.savez(root / "eval.npz", images=x_test[:120], labels=y_test[:120])
    return {"path": str(root / "sm"), "keras": model, "calib": str(root / "calib.npz"),
            "eval": str(root / "eval.npz"), "x": x_test, "y": y_test}


@pytest.fixture(scope="module")
def one_tf2onnx_child():
    """Every ONNX conversion of the module in one tf2onnx child process (``convert()`` joins an
    enclosing :func:`tfopt.emitters.onnx_worker.shared_child`): a child imports TensorFlow and
    tf2onnx, seconds of CPU, once per file instead of once per ``convert()``. A shared child writes
    what a child per job writes (tests/emitters/test_onnx_worker.py); a file that converts one graph
    twice reads the second back. Use it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    from tfopt.emitters.onnx_worker import shared_child

    with shared_child() as child:
        yield child


# The files that take the most CPU (seconds on an idle 2-core machine, in one process), run first.
# With `--dist loadfile --no-loadscope-reorder` (`make test`) xdist hands out files in collection
# order, two to a worker and one more as each finishes: the longest first, the many short files
# fill the gaps and the workers finish together (xdist's default order, most tests first, started
# these few-test files last, one worker running alone at the end). A file missing here only runs
# later; re-measure with `--durations` when a file's cost changes.
HEAVY_FIRST = (
    "tests/fleet/test_run.py",  # 180 s: ~25 fleet worker processes, each importing TensorFlow
    "tests/test_scripts.py",  # 130 s: the fleet script and the CI example in subprocesses
    "tests/coverage/test_matrix.py",  # 55 s: 8 models x 6 cells, each a convert()
    "tests/conversion/test_convert.py",  # 40 s: every target x precision of the digits CNN
)


def pytest_collection_modifyitems(items):
    """Move the tests of ``HEAVY_FIRST`` to the front, in its order; every file's tests stay together
    and in their order (a stable sort)."""
    rank = {path: i for i, path in enumerate(HEAVY_FIRST)}

    def key(item):
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank))

    items.sort(key=key)
