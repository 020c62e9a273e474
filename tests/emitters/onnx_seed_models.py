"""Small graphs with parallel branches, for the ONNX emitter's hash-seed test: where tf2onnx's
optimizers (in the child) and ONNX Runtime's quantizer and tfopt's rewrites (in the parent) meet
sets and dicts whose order a process's hash salt could decide. Run as a script, it emits each model
fp32 and int8 and prints ``{file: sha256}`` as one JSON line."""

from __future__ import annotations

import numpy as np

from tests.helpers import graph_model

SHAPES = {"heads": (None, 6, 8), "branches": (None, 8), "outputs": (None, 8), "cond": (None, 8)}
OUTPUTS = {"heads": ["y"], "branches": ["y", "sum"], "outputs": ["zeta", "alpha", "mid"], "cond": ["y"]}


def _w(t, seed, shape):
    return t.constant(np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.5)


def _heads(t, x):
    """Four attention heads over ``x[N, 6, 8]`` (different weights), concatenated and projected."""
    heads = []
    for h in range(4):
        q, k, v = (t.einsum("nsd,de->nse", x, _w(t, 10 * h + i, (8, 4))) for i in range(3))
        heads.append(t.matmul(t.nn.softmax(t.matmul(q, k, transpose_b=True) * 0.5), v))
    t.identity(t.einsum("nse,ef->nsf", t.concat(heads, axis=-1), _w(t, 99, (16, 8))), name="y")


def _branches(t, x):
    """Five activations of five projections of ``x``, concatenated; a second output sums them."""
    acts = (t.nn.relu, t.tanh, t.sigmoid, t.nn.elu, t.nn.softplus)
    parts = [act(t.matmul(x, _w(t, i, (8, 3)))) for i, act in enumerate(acts)]
    t.identity(t.concat(parts, axis=1), name="y")
    t.identity(t.add_n(parts), name="sum")


def _outputs(t, x):
    """Three heads of one trunk, named out of sorted order."""
    trunk = t.nn.relu(t.matmul(x, _w(t, 1, (8, 6))))
    t.identity(t.matmul(trunk, _w(t, 2, (6, 2))), name="zeta")
    t.identity(t.nn.softmax(t.matmul(trunk, _w(t, 3, (6, 4)))), name="alpha")
    t.identity(trunk * 2.0, name="mid")


def _cond(t, x):
    """A ``tf.cond`` whose branches hold parallel paths (an ONNX ``If`` with subgraphs)."""

    def paths(sign):
        return lambda: t.concat([t.tanh(t.matmul(x, _w(t, sign * i + 7, (8, 2)))) for i in range(3)], axis=1)

    t.identity(t.cond(t.reduce_sum(x) > 0, paths(1), paths(2)), name="y")


BUILDERS = {"heads": _heads, "branches": _branches, "outputs": _outputs, "cond": _cond}


def model(name: str):
    shape = SHAPES[name]

    def build(t):
        BUILDERS[name](t, t.compat.v1.placeholder(t.float32, shape, name="x"))

    return graph_model(build, {"x": shape}, OUTPUTS[name])


def main(out: str) -> None:
    import hashlib
    import json
    import os

    from tfopt.emitters.onnx import emit_onnx
    from tfopt.emitters.onnx_worker import shared_child

    files = {}
    with shared_child():
        for name, shape in SHAPES.items():
            m = model(name)
            rng = np.random.default_rng(0)
            calibration = [{"x": rng.standard_normal((2, *shape[1:])).astype(np.float32)} for _ in range(4)]
            for precision in ("fp32", "int8"):
                path = emit_onnx(m, os.path.join(out, f"{name}.{precision}.onnx"), precision=precision,
                                 calibration=calibration)
                with open(path, "rb") as f:
                    files[os.path.basename(path)] = hashlib.sha256(f.read()).hexdigest()
    print(json.dumps(files, sort_keys=True))


if __name__ == "__main__":
    import sys

    main(sys.argv[1])
