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
def tfmot():
    """TFMOT as tfopt imports it (tests/helpers.py: ``tfmot_or_skip``), or the test skipped. A fixture,
    not a module-level import: collecting a file must not import tf-keras and TFMOT in every worker."""
    from tests.helpers import tfmot_or_skip

    return tfmot_or_skip()


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


@pytest.fixture(scope="session")
def keras2_digits(tmp_path_factory):
    """The tf_keras (Keras 2) digits CNN that TFMOT can wrap, trained once for the session, saved as .h5,
    with its training, held-out and calibration data. Its layers are what the compression (--cluster,
    --prune), the clustering-after-BatchNorm and the QAT fine-tune tests look for: ``conv1`` -> ``bn1``
    -> ReLU ``relu`` -> depthwise ``dw`` -> ``bn2`` -> ReLU6 ``relu6`` -> 1x1 ``conv2`` (+relu) -> max
    pool -> ``dense`` 64 (+relu) -> ``probs`` softmax; about 35k weights, most in ``dense``, so the
    weights dominate the file's size. Tests write their outputs elsewhere (it is shared)."""
    from tests.helpers import tfmot_or_skip

    tfmot_or_skip()
    import tf_keras as keras

    x_train, y_train, x_test, y_test = examples.digits()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="images")
    h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inputs)
    h = keras.layers.ReLU(name="relu")(keras.layers.BatchNormalization(name="bn1")(h))
    h = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = keras.layers.ReLU(6.0, name="relu6")(keras.layers.BatchNormalization(name="bn2")(h))
    h = keras.layers.Conv2D(32, 1, activation="relu", name="conv2")(h)
    h = keras.layers.Flatten()(keras.layers.MaxPooling2D(name="pool")(h))
    h = keras.layers.Dense(64, activation="relu", name="dense")(h)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="probs")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=10, batch_size=32, verbose=0)
    root = tmp_path_factory.mktemp("keras2_digits")
    model.save(str(root / "digits.h5"))
    np.savez(root / "train.npz", images=x_train, labels=y_train)
    np.savez(root / "eval.npz", images=x_test, labels=y_test)
    np.savez(root / "calib.npz", images=x_train[:200])
    return {"path": str(root / "digits.h5"), "train": str(root / "train.npz"), "eval": str(root / "eval.npz"),
            "calib": str(root / "calib.npz"), "model": model, "x_calib": x_train[:200], "x": x_test}


# Files whose tests count or compare tf2onnx children (a child per job, a fork, a shared scope of their own):
# they run outside the worker's shared child below.
OWN_TF2ONNX_CHILDREN = ("tests/emitters/test_onnx_worker.py",)


@pytest.fixture(scope="session")
def _worker_tf2onnx_child():
    from tfopt.emitters.onnx_worker import shared_child

    with shared_child() as child:
        yield child


@pytest.fixture(scope="module", autouse=True)
def _tf2onnx_child_of_the_worker(request):
    """Every ONNX conversion of a test process (an xdist worker) in one tf2onnx child: outside a
    shared scope each ``convert()`` to ONNX starts a child that imports TensorFlow and tf2onnx
    (about 8 s of CPU; pytest's hash seed is not the child's, so it cannot fork), so the suite paid
    that once per conversion. A shared child writes what a child per job writes, whichever jobs it
    ran before (tests/emitters/test_onnx_worker.py). The files of ``OWN_TF2ONNX_CHILDREN`` run
    without it. The child starts on the first ONNX job only."""
    from tfopt.emitters import onnx_worker

    if request.node.nodeid.split("::", 1)[0] in OWN_TF2ONNX_CHILDREN:
        token = onnx_worker._SHARED.set(None)
        yield
        onnx_worker._SHARED.reset(token)
        return
    request.getfixturevalue("_worker_tf2onnx_child")
    yield


@pytest.fixture(scope="module")
def one_tf2onnx_child():
    """Every ONNX conversion of the module in one tf2onnx child process (``convert()`` joins an
    enclosing :func:`tfopt.emitters.onnx_worker.shared_child`): the worker's child of
    ``_tf2onnx_child_of_the_worker`` (a nested scope joins the outer one); it states that the file's
    conversions rely on sharing one. Use it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    from tfopt.emitters.onnx_worker import shared_child

    with shared_child() as child:
        yield child


# The files that take the most CPU (seconds on an idle 2-core machine, `make test`), run first.
# With `--dist loadfile --no-loadscope-reorder` (`make test`) xdist hands out files in collection
# order, two to a worker and one more as each finishes: the longest first, the many short files
# fill the gaps and the workers finish together (xdist's default order, most tests first, started
# these few-test files last, one worker running alone at the end; so did collection order for the
# tests/test_*.py files, collected after every folder but verification/). A file missing here only
# runs later; re-measure with `--durations` when a file's cost changes.
HEAVY_FIRST = (
    "tests/test_scripts.py",  # 85 s: the fleet script (one model converted twice) and the CI example in subprocesses
    "tests/fleet/test_run.py",  # 70 s: 6 fleet worker processes and a tf2onnx child, each importing TensorFlow (~8 s CPU)
    "tests/emitters/test_onnx_worker.py",  # 60 s: 11 processes importing TensorFlow (tf2onnx children, two scripts)
    "tests/test_notebooks.py",  # 60 s: four notebooks in one kernel (and their `!tfopt` commands)
    "tests/emitters/test_large.py",  # 40 s of CPU: 7 large-model converter children (one per artifact), each importing TensorFlow
    "tests/coverage/test_matrix.py",  # 40 s: 8 models x 2 convert() calls (a precision's cells in one)
    "tests/graphdef/test_state_updates.py",  # 45 s: stateful bodies and Keras 3 RNN dropout, frozen and converted to every target
    "tests/loaders/test_compressing.py",  # 40 s: TFMOT clustering and pruning of the Keras 2 digits CNN, int8 in every runtime
    "tests/quantizing/engine/test_loops.py",  # 40 s: a recurrent model trained, 3 int8 conversions of v1 loops
    "tests/conversion/test_convert.py",  # 40 s: every target x precision of the digits CNN
    "tests/debug/test_compare.py",  # 35 s: the debug models, converted to every target and int8
    "tests/conversion/test_ahead.py",  # 37 s: the float and int8 ONNX jobs sent ahead, every target built
    "tests/test_keras_applications.py",  # 30 s: MobileNetV2 and EfficientNetB0, optimized and verified
    "tests/loaders/test_tf2_metagraph.py",  # 17 s: a writer subprocess importing TensorFlow, then two SavedModels to every target
    "tests/test_tf.py",  # 25 s: fresh interpreters importing TensorFlow, Keras and TFMOT in each order
    "tests/conversion/test_release.py",  # 20 s of CPU: two conversions, three large-model converter children
    "tests/quantizing/qat/test_finetune.py",  # 30 s: post-training and fine-tuned int8 in every target
    "tests/verification/test_lone_time_major.py",  # 20 s: time-major recurrences saved twice, to every target
    "tests/loaders/test_keras_time_distributed.py",  # 19 s: Keras 3 seq models converted to TFLite
    "tests/loaders/test_keras_time_distributed_mask.py",  # 23 s of CPU: masked Keras 3 models to every target
    "tests/verification/test_input_structure.py",  # 19 s: 16 structure kinds, each converted
    "tests/verification/test_ragged_inputs.py",  # 30 s: 4 ragged SavedModels; map_fn over rows to all targets twice
    "tests/graphdef/test_batch_axis_ties.py",  # 13 s: five tied-axis graphs saved twice, one converted
    "tests/emitters/test_tflite_isolated.py",  # 12 s: a crashing calibrator in a tfopt subprocess
    "tests/conversion/test_calibration_batches.py",  # 10 s: native int8 of a loop model to two targets, counted
)


def pytest_collection_modifyitems(items):
    """Move the tests of ``HEAVY_FIRST`` to the front, in its order; every file's tests stay together
    and in their order (a stable sort)."""
    rank = {path: i for i, path in enumerate(HEAVY_FIRST)}

    def key(item):
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank))

    items.sort(key=key)
