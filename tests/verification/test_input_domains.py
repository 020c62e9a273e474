"""Made-up inputs keep to the domain of the ops they reach: graphs generated from a seed put
``Sqrt``/``Log``/``Rsqrt``/``Log1p``/``Pow``/``Acos``/``Asin`` at depths 0-3 behind moving and
affine ops (``Reshape``, ``Neg``, ``x*c``, ``x+c``, ``c-x``, ``ConcatV2``, ``Cast``) on 1-3 inputs;
standard-normal values give the original NaN there (issue 24: ionmob's ``sqrt(m/z)``), values
inside the pulled-back domain convert and verify by value in every target."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_pb

RESTRICTED = {"Sqrt": (0.0, math.inf), "Log": (0.0, math.inf), "Rsqrt": (0.0, math.inf),
              "Log1p": (-1.0, math.inf), "Pow": (0.0, math.inf), "Acos": (-1.0, 1.0), "Asin": (-1.0, 1.0)}
STEPS = ("reshape", "neg", "scale", "shift", "flip", "concat")


def _recipe(seed: int, ops: tuple[str, ...] = tuple(RESTRICTED)) -> list[tuple[str, list[str]]]:
    """Per input: (restricted op, the steps from the input to it); 1-3 inputs, depths 0-3."""
    rng = np.random.default_rng(seed)
    return [(ops[int(rng.integers(len(ops)))], [str(s) for s in rng.choice(STEPS, int(rng.integers(0, 4)))])
            for _ in range(1 + seed % 3)]


def _build(recipe, seed: int):
    def build(t):
        rng = np.random.default_rng(seed)
        heads = []
        for k, (op, steps) in enumerate(recipe):
            x = t.compat.v1.placeholder(t.float32, [None, 4], name=f"in{k}")
            for step in steps:
                c = float(rng.uniform(0.25, 0.75))  # small shifts: a standard normal still crosses them
                x = {"reshape": lambda v: t.reshape(v, [-1, 4]), "neg": t.negative, "scale": lambda v, c=c: v * -c,
                     "shift": lambda v, c=c: v + c, "flip": lambda v, c=c: c - v,
                     "concat": lambda v: t.concat([v, v * 2.0], axis=1)[:, :4]}[step](x)
            y = t.pow(x, 0.5) if op == "Pow" else getattr(t.raw_ops, op)(x=x)
            heads.append(t.reduce_sum(t.tanh(y), axis=1, keepdims=True))
        t.identity(t.concat(heads, axis=1) if len(heads) > 1 else heads[0], name="y")
    return build


@pytest.mark.parametrize("seed", range(6), ids=lambda s: f"graph{s}")
def test_made_up_values_respect_the_domain_of_the_ops_they_reach(seed, tmp_path):
    from tfopt.graph import TensorSpec
    from tfopt.runtimes.tensorflow import GraphRunner
    from tfopt.verification.input_domains import input_domains
    from tfopt.verification.testing import random_inputs

    recipe = _recipe(seed)
    pb = graph_pb(tmp_path / "g.pb", _build(recipe, seed))
    frozen, report = tfopt.freeze(pb, outputs=["y"])
    domains = input_domains(frozen.graph_def)
    assert set(domains) == {f"in{k}" for k in range(len(recipe))}
    specs = [TensorSpec(f"in{k}", f"in{k}:0", "float32", (None, 4)) for k in range(len(recipe))]
    for s in range(5):
        out = GraphRunner(frozen)(random_inputs(specs, seed=s, batch=16, graph_def=frozen.graph_def))
        assert np.all(np.isfinite(out["y"]))
    for k, (op, _) in enumerate(recipe):  # the message names the op and the domain
        assert f"in{k} in " in report.verified_at.summary() and f"{op} '" in report.verified_at.domains[f"in{k}"]


# TFLite has no builtin Acos/Asin: its emitter lowers them to ATAN2 (tfopt.emitters.tflite_lower_math).
CASES = {"tflite-ops": (5, ("Sqrt", "Log", "Rsqrt", "Pow"), ("tflite", "onnx", "openvino")),
         "inverse-trig": (4, ("Acos", "Asin"), ("tflite", "onnx", "openvino"))}


@pytest.mark.slow  # ~50 s each on a shared 2-core machine; the test above proves the inputs
@pytest.mark.parametrize("case", list(CASES))
def test_domain_restricted_graphs_convert_by_value_in_every_target(case, tmp_path):
    if not all(importlib.util.find_spec(m) for m in ("tf2onnx", "openvino")):
        pytest.skip("the onnx and openvino extras are needed")
    seed, ops, targets = CASES[case]
    pb = graph_pb(tmp_path / "g.pb", _build(_recipe(seed, ops), seed))
    result = tfopt.convert(pb, str(tmp_path / "out"), to=list(targets), outputs=["y"], report_runs=1)
    assert not result.failed and {a.format for a in result.artifacts} == set(targets)
    assert all(a.max_abs_err <= 1e-4 for a in result.artifacts), result.artifacts


def test_pullback_through_affine_ops():
    """``Sqrt(0.25 - 2x)`` needs ``x <= 0.125``; ``Acos(x + 0.5)`` needs ``x in [-1.5, 0.5]``; both on
    one input: the intersection; a scale of both signs (``x * [1, -1]``) restricts nothing."""
    from tests.helpers import graph_model
    from tfopt.verification.input_domains import input_domains

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 2], name="x")
        z = t.compat.v1.placeholder(t.float32, [None, 2], name="z")
        t.identity(t.sqrt(0.25 - 2.0 * x) + t.acos(x + 0.5) + t.sqrt(z * t.constant([1.0, -1.0])), name="y")

    d = input_domains(graph_model(build, {}, ["y"]).graph_def)
    assert set(d) == {"x"} and (d["x"].lo, d["x"].hi, d["x"].lo_open, d["x"].hi_open) == (-1.5, 0.125, False, False)
    assert "Sqrt '" in d["x"].why and "Acos '" in d["x"].why
