"""``--custom-objects MODULE`` is imported before any loader runs, in every format, and in the children
that read the model's graphs.

The class: a model whose loading needs something only the user's Python registers (a composite
type's ``TypeSpec``, a ``tf.load_op_library`` op). The pure-Python case is a ``TypeSpec`` registered
by the user's module and stored in a function of the SavedModel's object graph: ``tf.saved_model.load``
refuses it unless the module ran first (without it tfopt falls back to the MetaGraph's signatures,
:mod:`tfopt.loaders.tf2_metagraph`). The C++ case (a compiled op) is in the slow lane: it needs a compiler.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import textwrap

import numpy as np
import pytest

import tfopt
from tests.loaders.registered_types import masked_type_source
from tfopt.errors import ModelFormatError, OptionError

TOLERANCE = 1e-6  # fp32 matmul + tanh, the same kernels in both loads

# A registered TypeSpec (as TensorFlow Probability's and TF-GNN's are), named after its module. The saved
# and the user's copies differ only in that name, of the same length (see `saved`).
TYPES = "import numpy as np\n" + masked_type_source("__name__") + textwrap.dedent('''
    class Model(tf.Module):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.w = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))
            self.masked = tf.function(lambda m: tf.where(m.mask, m.values, 0.0), input_signature=[MaskedSpec([None, 4])])

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x):
            return {"y": tf.tanh(tf.matmul(x, self.w))}
''')
SAVED, USERS = "tfopt_saved_types", "tfopt_users_types"  # same length: the stored name is swapped in place


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A SavedModel whose object graph holds ``USERS.MaskedSpec``, a type this process has not registered (the
    user's module registers it), and its outputs on ``x``. It is written here under ``SAVED``'s name, which this
    process registers, and the stored name is then replaced by the user's: what a writer's machine hands over."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("user_modules")
    (root / f"{SAVED}.py").write_text(TYPES)
    (root / f"{USERS}.py").write_text(TYPES)
    spec = importlib.util.spec_from_file_location(SAVED, root / f"{SAVED}.py")
    writer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writer)
    model, path = writer.Model(), root / "model"
    with pytest.warns(UserWarning, match="will require that this type be imported"):  # TensorFlow says so itself
        tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve})
    stored = (path / "saved_model.pb").read_bytes()
    assert stored.count(f"{SAVED}.MaskedSpec".encode()) >= 1  # the premise: the type is stored by name
    (path / "saved_model.pb").write_bytes(stored.replace(SAVED.encode(), USERS.encode()))
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    return str(root), str(path), x, np.tanh(x @ model.w.numpy())


def test_the_module_is_imported_before_tensorflow_reads_the_savedmodel(saved, monkeypatch):
    root, path, x, expected = saved
    monkeypatch.chdir(root)  # the module is found as with `python -m`, from the working directory
    model = tfopt.load(path, custom_objects=USERS)
    assert model.provenance["format"] == "savedmodel"  # TF2's own loader, not the MetaGraph fallback
    assert "tf2_refused" not in model.provenance
    assert model.provenance["user_modules"] == [[USERS, root]]  # what the children import
    np.testing.assert_allclose(model.reference({"x": x})["y"], expected, atol=TOLERANCE, rtol=0)


@pytest.fixture(scope="module")
def formats(saved, tmp_path_factory):
    """A model of each loader that does not need Keras to be saved, plus a Keras 3 file."""
    import keras

    from tests.helpers import graph_pb

    root = tmp_path_factory.mktemp("formats")
    keras_path = str(root / "tiny.keras")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(keras_path)
    pb = graph_pb(root / "tiny.pb", lambda t: t.identity(t.compat.v1.placeholder(t.float32, [None, 3], name="x") * 2.0,
                                                         name="y"))
    return {"savedmodel": saved[1], "graphdef": pb, "keras": keras_path}


@pytest.mark.parametrize("fmt", ["savedmodel", "graphdef", "keras"])
def test_a_module_that_raises_while_imported_is_named(fmt, formats, tmp_path, monkeypatch):
    (tmp_path / "tfopt_broken_ops.py").write_text("raise RuntimeError('libmy_ops.so: cannot open shared object')\n")
    monkeypatch.chdir(tmp_path)
    options = {"outputs": ["y"]} if fmt == "graphdef" else {}
    with pytest.raises(OptionError, match=r"--custom-objects: cannot import module 'tfopt_broken_ops': RuntimeError: "
                                          r"libmy_ops\.so"):
        tfopt.load(formats[fmt], custom_objects="tfopt_broken_ops", **options)


@pytest.mark.slow  # a converter child: TensorFlow imported again (~8 s)
def test_the_large_model_child_imports_the_module(saved, tmp_path, monkeypatch):
    """The large-model path's converter runs in a child process, which imports the recorded module before it
    reads the serving SavedModel (a custom op there would be unknown to it otherwise)."""
    from tests.helpers import saved_function
    from tfopt._tf import tf
    from tfopt.emitters.large import emit_from_savedmodel
    from tfopt.runtimes import runner_for

    (tmp_path / "tfopt_marking.py").write_text("import os\nwith open(os.environ['TFOPT_TEST_MARKS'], 'a') as f:\n"
                                               "    f.write(f'{os.getpid()}\\n')\n")
    marks = tmp_path / "marks.txt"
    monkeypatch.setenv("TFOPT_TEST_MARKS", str(marks))
    t = tf()
    source = saved_function(tmp_path / "serving", lambda x: {"y": x * 2.0}, [t.TensorSpec([None, 3], t.float32, name="x")])
    out = str(tmp_path / "model.tflite")
    emit_from_savedmodel("tflite", source, out, precision="fp32", input_names=["x"], output_names=["y"],
                         imports=[["tfopt_marking", str(tmp_path)]])
    assert [int(p) for p in marks.read_text().split()] != [os.getpid()] and marks.read_text().strip()
    from tfopt.graph import Model as Graph
    from tfopt.graph import TensorSpec

    spec = Graph(t.compat.v1.GraphDef(), [TensorSpec("x", "x:0", "float32", (None, 3))],
                 [TensorSpec("y", "y:0", "float32", (None, 3))])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    runner = runner_for("tflite", out, spec)
    np.testing.assert_allclose(runner({"x": x})["y"], x * 2.0, atol=0, rtol=0)
    runner.close()


CUSTOM_OP = r'''
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
using namespace tensorflow;
REGISTER_OP("TfoptTestTwice").Input("x: float").Output("y: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) { c->set_output(0, c->input(0)); return OkStatus(); });
class TwiceOp : public OpKernel {
 public:
  explicit TwiceOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* c) override {
    Tensor* y = nullptr;
    OP_REQUIRES_OK(c, c->allocate_output(0, c->input(0).shape(), &y));
    auto in = c->input(0).flat<float>();
    auto out = y->flat<float>();
    for (int i = 0; i < in.size(); ++i) out(i) = 2.0f * in(i);
  }
};
REGISTER_KERNEL_BUILDER(Name("TfoptTestTwice").Device(DEVICE_CPU), TwiceOp);
'''


@pytest.mark.slow  # compiles a TensorFlow op (~15 s)
def test_a_custom_op_library_loaded_by_the_module(tmp_path, monkeypatch):
    """A frozen graph holding an op only ``tf.load_op_library`` registers: without the module TensorFlow cannot
    read it; with it, it loads and computes the op's values."""
    import subprocess

    import tensorflow as tf

    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the op library")
    (tmp_path / "twice.cc").write_text(CUSTOM_OP)
    library = str(tmp_path / "twice.so")
    subprocess.run([compiler, "-std=c++17", "-shared", "-fPIC", "-O1", str(tmp_path / "twice.cc"), "-o", library,
                    *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()], check=True, capture_output=True)
    graph = tf.compat.v1.GraphDef()
    x = graph.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = tf.float32.as_datatype_enum
    graph.node.add(name="y", op="TfoptTestTwice", input=["x"])
    (tmp_path / "model.pb").write_bytes(graph.SerializeToString())
    (tmp_path / "tfopt_twice_ops.py").write_text(f"import tensorflow as tf\ntf.load_op_library({library!r})\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFormatError, match="uses op 'TfoptTestTwice'"):  # without the module
        tfopt.freeze(str(tmp_path / "model.pb"), outputs=["y"])
    frozen, _ = tfopt.freeze(str(tmp_path / "model.pb"), outputs=["y"], custom_objects="tfopt_twice_ops")
    assert [n.op for n in frozen.graph_def.node] == ["Placeholder", "TfoptTestTwice"]
    feed = np.arange(6, dtype=np.float32).reshape(2, 3)
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(frozen.graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            got = session.run("y:0", {"x:0": feed})
    np.testing.assert_allclose(got, feed * 2.0, atol=0, rtol=0)


# The user's module registers tf2onnx conversions of two ops tf2onnx lacks (tf2onnx's documented way to add one:
# a handler class per TF op), as a custom op's package ships a handler for its op.
ONNX_HANDLERS = textwrap.dedent('''
    import numpy as np
    from tf2onnx import utils
    from tf2onnx.handler import tf_op


    def _one(ctx, node):
        return ctx.make_const(utils.make_name(node.name + "/one"), np.array(1, np.float32)).output[0]


    @tf_op("Expm1")
    class Expm1:
        @classmethod
        def version_1(cls, ctx, node, **kwargs):  # exp(x) - 1
            exp = ctx.make_node("Exp", [node.input[0]])
            node.type = "Sub"
            ctx.replace_inputs(node, [exp.output[0], _one(ctx, node)])


    @tf_op("Log1p")
    class Log1p:
        @classmethod
        def version_1(cls, ctx, node, **kwargs):  # log(1 + x)
            total = ctx.make_node("Add", [node.input[0], _one(ctx, node)])
            node.type = "Log"
            ctx.replace_inputs(node, [total.output[0]])
''')


def test_the_onnx_child_imports_the_module(tmp_path, monkeypatch):
    """tf2onnx runs in a child process (:mod:`tfopt.emitters.onnx_worker`), which imports the recorded module
    before it converts, as every other child that reads the model's graphs does: a model whose ONNX conversion
    needs what the module registers converts, and matches TensorFlow."""
    from tests.helpers import graph_pb
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for

    (tmp_path / "tfopt_onnx_handlers.py").write_text(ONNX_HANDLERS)
    monkeypatch.chdir(tmp_path)

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 5], name="x")
        t.identity(t.math.expm1(x) * 0.5 + t.math.log1p(t.abs(x)), name="y")

    path = graph_pb(tmp_path / "model.pb", build)
    out = str(tmp_path / "out")
    (artifact,) = tfopt.convert(path, out, to=["onnx"], outputs=["y"], custom_objects="tfopt_onnx_handlers",
                                report_runs=1).artifacts
    x = np.random.default_rng(3).normal(size=(4, 5)).astype(np.float32)
    runner = runner_for("onnx", os.path.join(out, artifact.path), manifest_model(out))
    try:
        got = runner({"x": x})["y"]
    finally:
        runner.close()
    np.testing.assert_allclose(got, np.expm1(x) * 0.5 + np.log1p(np.abs(x)), atol=1e-6, rtol=1e-6)  # fp32 rounding
