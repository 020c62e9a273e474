"""Made-up inputs keep to the domain of restricted ops inside function bodies: TF2 ``tf.function``s
generated from a seed pass ``x`` (after an optional ``a*x + b``) into a ``tf.while_loop``, a
``tf.cond``, a ``tf.switch_case`` (in the main graph, or calling a nested ``tf.function`` inside a
loop body), a loop inside a cond branch, or a nested ``tf.function`` called from a loop body, whose body applies ``Sqrt``/``Log``/``Asin``/``Acosh``/``Atanh``
to ``p*u + q`` (``q - u``, ``u + q`` or ``u``) scaled by ``sⁱ`` in loop iteration ``i`` (``s`` keeps
every iteration inside the domain). Standard-normal values give the original model NaN there and
freezing stops ("no usable output"); the domain pulled back through the body (first iteration: ``sⁱ =
1``) and the call is asserted exactly, and freezing and conversion verify with no flags.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

import tfopt
from tests.helpers import graph_model

# op -> (its domain lo, hi, lo_open, hi_open; the loop's per-iteration scale s)
OPS = {"Sqrt": (0.0, math.inf, False, True, 2.0), "Log": (0.0, math.inf, True, True, 2.0),
       "Asin": (-1.0, 1.0, False, False, 0.5), "Acosh": (1.0, math.inf, False, True, 2.0),
       "Atanh": (-1.0, 1.0, True, True, 0.5)}
KINDS = ("while", "cond", "case", "loop-in-cond", "call-in-while", "case-in-loop")
INNER = {"none": (1.0, 0.0), "shift": (1.0, 0.25), "flip": (-1.0, 0.25)}  # u -> p*u + q


def _case(seed: int) -> tuple[str, str, tuple[float, float] | None, str]:
    """(op, control flow, the outer ``(a, b)`` of ``a*x + b`` or None, the inner map's name)."""
    rng = np.random.default_rng(seed)
    pre = None if seed % 2 else (float(rng.choice([-1, 1]) * rng.uniform(0.5, 2.0)), float(rng.uniform(-0.5, 0.5)))
    return list(OPS)[seed % len(OPS)], KINDS[seed % len(KINDS)], pre, list(INNER)[seed % 3]


CASES = [_case(seed) for seed in range(12)]


def _module(op: str, kind: str, pre: tuple[float, float] | None, inner: str):
    import tensorflow as tf

    p, q = INNER[inner]
    s = OPS[op][4]
    fn = {"Sqrt": tf.sqrt, "Log": tf.math.log, "Asin": tf.asin, "Acosh": tf.acosh, "Atanh": tf.atanh}[op]

    def restricted(u, i):
        m = u if inner == "none" else (q - u if p < 0 else u + q)
        return fn(m * tf.pow(s, tf.cast(i, tf.float32)))

    called = tf.function(restricted)  # a nested call: a PartitionedCall inside the body

    def case(v, k, i, f):
        return tf.switch_case(k % 3, [lambda: f(v, i), lambda: 2.0 * f(v, i), lambda: f(v, i) - 1.0])

    def loop(v, k, f):
        def body(i, acc):
            return i + 1, acc + (case(v, k, i, called) if kind == "case-in-loop" else f(v, i))

        return tf.while_loop(lambda i, _: i < 1 + k % 3, body, [tf.constant(0), tf.zeros_like(v)])[1]

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x"),
                                      tf.TensorSpec([], tf.int32, name="k")])
        def serve(self, x, k):
            v = x if pre is None else x * pre[0] + pre[1]
            if kind in ("while", "call-in-while", "case-in-loop"):
                y = loop(v, k, restricted if kind == "while" else called)
            elif kind == "cond":
                y = tf.cond(k > 3, lambda: restricted(v, 0), lambda: restricted(v, 0) + 1.0)
            elif kind == "loop-in-cond":
                y = tf.cond(k > 3, lambda: loop(v, k, restricted), lambda: restricted(v, 0) * 2.0)
            else:  # TensorFlow lowers a Case in the main graph to _SwitchN and Merge
                y = case(v, k, 0, restricted)
            return {"y": y}

    return Module()


def _expected(op: str, pre: tuple[float, float] | None, inner: str) -> tuple[float, float, bool, bool]:
    """The preimage of the op's domain under ``x -> p*(a*x + b) + q``."""
    lo, hi, lo_open, hi_open, _ = OPS[op]
    a, b = pre or (1.0, 0.0)
    p, q = INNER[inner]
    scale, shift = p * a, p * b + q
    ends = sorted([((lo - shift) / scale, lo_open), ((hi - shift) / scale, hi_open)], key=lambda e: e[0])
    return ends[0][0], ends[1][0], ends[0][1], ends[1][1]


def _saved(case, path):
    import tensorflow as tf

    module = _module(*case)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return str(path)


def _ids(case) -> str:
    op, kind, pre, inner = case
    return f"{op}-{kind}-{inner}{'-affine' if pre else ''}".lower()


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_the_domain_inside_a_body_is_found_and_freezing_verifies_with_no_flags(case, tmp_path):
    from tfopt.verification.input_domains import input_domains

    op, kind, pre, inner = case
    frozen, report = tfopt.freeze(_saved(case, tmp_path / "sm"))  # verifies the frozen graph: no flags
    in_main = any(n.op == op for n in frozen.graph_def.node)
    assert in_main == (kind == "case")  # the others keep it in a body
    d = input_domains(frozen.graph_def)["x"]
    lo, hi, lo_open, hi_open = _expected(op, pre, inner)
    assert (d.lo_open, d.hi_open) == (lo_open, hi_open) and d.lo == pytest.approx(lo) and d.hi == pytest.approx(hi)
    assert f"{op} '" in d.why and (" in " in d.why) != in_main  # names the op and the function it sits in
    assert f"{op} '" in report.verified_at.domains["x"]
    x = report.verified_at.feeds["x"]  # drawn strictly inside
    assert report.verified_at.source == "made up" and np.all((x > lo) & (x < hi))


def _graph_with_calls(t):
    """A TF1 graph whose main graph calls a function (a ``PartitionedCall``, not inlined: nothing here
    is frozen) that calls another; the inner one applies ``Acosh(2 - u)``, the outer ``Log(u + 1)``;
    ``z`` is squared first (not invertible) and ``w`` passes through a loop whose multiplier is the
    input ``k`` (unknown before the graph runs): neither is restricted."""
    x = t.compat.v1.placeholder(t.float32, [None, 3], name="x")
    z = t.compat.v1.placeholder(t.float32, [None, 3], name="z")
    w = t.compat.v1.placeholder(t.float32, [None, 3], name="w")
    k = t.compat.v1.placeholder(t.float32, [], name="k")

    @t.function
    def inner(u):
        return t.math.acosh(2.0 - u)

    @t.function
    def outer(u):
        return inner(u) + t.math.log(u + 1.0)

    looped = t.while_loop(lambda i, _: i < 2, lambda i, acc: (i + 1, acc + t.sqrt(w * k)), [0, t.zeros_like(w)])[1]
    t.identity(outer(x * 0.5) + outer(t.square(z)) + looped, name="y")


def test_nested_calls_map_the_domain_back_and_unknown_maps_restrict_nothing():
    from tfopt.verification.input_domains import input_domains

    model = graph_model(_graph_with_calls, {}, ["y"])
    assert any(n.op in ("PartitionedCall", "StatefulPartitionedCall") for n in model.graph_def.node)
    d = input_domains(model.graph_def)
    assert set(d) == {"x"}  # 2 - x/2 >= 1 and x/2 + 1 > 0: x in (-2, 2]
    assert (d["x"].lo, d["x"].hi, d["x"].lo_open, d["x"].hi_open) == (-2.0, 2.0, True, False)
    assert "Acosh '" in d["x"].why and "Log '" in d["x"].why


CONVERT = [CASES[0], CASES[4]]  # Sqrt in a loop after a*x + b; Atanh in a call inside a loop


@pytest.mark.parametrize("case", CONVERT, ids=_ids)
def test_a_body_restricted_model_converts_to_tflite_with_no_flags(case, tmp_path):
    result = tfopt.convert(_saved(case, tmp_path / "sm"), str(tmp_path / "out"), to=["tflite"], report_runs=1)
    assert not result.failed and len(result.artifacts) == 1
    assert result.artifacts[0].max_abs_err <= 1e-4, result.artifacts


@pytest.mark.slow  # ~60 s on a shared 2-core machine: tf2onnx and OpenVINO start
def test_a_body_restricted_model_converts_to_every_target_with_no_flags(tmp_path):
    if not all(importlib.util.find_spec(m) for m in ("tf2onnx", "openvino")):
        pytest.skip("the onnx and openvino extras are needed")
    case = CASES[3]  # Acosh in a loop inside a cond branch
    result = tfopt.convert(_saved(case, tmp_path / "sm"), str(tmp_path / "out"), to=["tflite", "onnx", "openvino"],
                           report_runs=1)
    assert not result.failed and {a.format for a in result.artifacts} == {"tflite", "onnx", "openvino"}
    assert all(a.max_abs_err <= 1e-4 for a in result.artifacts), result.artifacts
