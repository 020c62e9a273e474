"""Every input and output port of an OpenVINO IR carries the model's names only, so that
``get_any_name()`` (what OpenVINO's tools print and user code keys on) is the model's name.

OpenVINO's frontend leaves the name of an op it removes on the port it merges into: an identity
``Transpose`` on an input (Keras 2's ``Tensordot`` over a 3-D input: rnnmorph's ``grammemes``), the
``Reshape`` under an output's collapsed ``Identity`` (basic-pitch's ``contour``). ``get_any_name()``
is the name that sorts first, so the internal one won whenever its scope sorts before the model's
name. Generated graphs put such ops, under scopes that sort before and after the names, on one or
two inputs and outputs, beside a pass-through output; each conversion is verified by tfopt in every
target (outputs paired by name, within 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import converted_everywhere, graph_model


def _build(inputs: list[str], outputs: list[str], scope: str, through: bool):
    def build(t):
        xs = [t.compat.v1.placeholder(t.float32, [None, None, 5], name=n) for n in inputs]
        for i, name in enumerate(outputs):
            x = xs[i % len(xs)]
            with t.name_scope(f"{scope}{i}"):
                # Keras 2's Tensordot over a 3-D input: an identity transpose, a reshape to 2-D, a matmul, back
                flat = t.reshape(t.transpose(x, [0, 1, 2]), [-1, 5])
                w = t.constant(np.linspace(-1, 1, 15, dtype="float32").reshape(5, 3))
                y = t.reshape(t.matmul(flat, w), t.concat([t.shape(x)[:2], [3]], 0))
            t.identity(y, name=name)
        if through:
            t.identity(xs[0], name="passed")
    return build


CASES = {  # inputs, outputs, the scope of the removed ops (sorts before "grammemes"/"out" or after)
    "scope-sorts-first": (["grammemes"], ["out"], "A/model/dense", False),
    "scope-sorts-last": (["grammemes"], ["out"], "zz/dense", False),
    "two-inputs-two-outputs": (["xs", "grammemes"], ["main_pred", "contour"], "StatefulPartitionedCall/m", False),
    "beside-a-pass-through": (["chars"], ["tags"], "B", True),
}


@pytest.mark.parametrize(("inputs", "outputs", "scope", "through"), CASES.values(), ids=CASES.keys())
def test_every_ir_port_is_named_by_the_model_alone(tmp_path, inputs, outputs, scope, through):
    from tfopt._openvino import openvino

    names = outputs + (["passed"] if through else [])
    model = graph_model(_build(inputs, outputs, scope, through), {n: (None, None, 5) for n in inputs}, names)
    converted_everywhere(model, str(tmp_path / "out"), 1e-6)
    ir = openvino().Core().read_model(str(tmp_path / "out" / "openvino.fp32" / "model.xml"))
    got = {p.get_any_name(): sorted(p.get_names()) for p in (*ir.inputs, *ir.outputs)}
    assert sorted(got) == sorted(f"{n}:0" for n in inputs + names), got
    own = {f"{n}{suffix}" for n in inputs + names for suffix in ("", ":0")}
    assert all(set(v) <= own for v in got.values()), got  # nothing beside the model's names
