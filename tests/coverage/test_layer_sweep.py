"""The Keras layer sweep (``scripts/layer_sweep.py``): the fast test runs its machinery on a few
layers; the slow lane sweeps every case in every save format and asserts no internal error and
every ``ok`` cell within the fp32 bound verification uses."""

from __future__ import annotations

import pytest

from tfopt.coverage import layer_cases, layer_sweep
from tfopt.verification.tolerances import ARTIFACT

pytestmark = pytest.mark.usefixtures("one_tf2onnx_child")  # tests/conftest.py: one tf2onnx child for the file


def _assert_sound(rows):
    for row in rows:
        for target, cell in row["cells"].items():
            where = (row["case"], row["api"], row["format"], target, cell)
            assert cell["status"] != "internal", where
            if cell["status"] == "ok":
                assert cell["scaled_err"] <= ARTIFACT["fp32"], where
            if cell["status"] == "typed":  # a typed error names what failed and is not tfopt's own bug
                assert cell["message"] and cell["error"] not in ("TfoptError",), where


def test_sweep_machinery_on_a_few_layers():
    by_name = {c.name: c for c in layer_cases.cases()}
    rows = layer_sweep.sweep([by_name["Dense"]], ["keras3"], formats={"keras3": ["keras"]})
    # a Keras-3-only layer is a skip in Keras 2, with the reason, and never converted
    rows += layer_sweep.sweep([by_name["RMSNormalization"]], ["keras2"], formats={"keras2": ["h5"]})
    cells = {(r["case"], r["api"]): r["cells"] for r in rows}
    assert set(cells) == {("Dense", "keras3"), ("RMSNormalization", "keras2")}
    assert all(c["status"] == "ok" for c in cells[("Dense", "keras3")].values()), cells
    assert {c["status"] for c in cells[("RMSNormalization", "keras2")].values()} == {"skip"}
    _assert_sound(rows)
    text = layer_sweep.to_markdown(rows, {"keras3": {"TextVectorization": "needs a vocabulary"}})
    counts = layer_sweep.count(rows)
    assert (counts.ok, counts.skip) == (3, 3) and "3 ok" in text and "TextVectorization: needs" in text


def test_every_case_builds_a_distinct_name_and_uncovered_classes_give_a_reason():
    names = [c.name for c in layer_cases.cases()]
    assert len(names) == len(set(names))
    assert all(why for why in layer_cases.uncovered("keras3").values())


@pytest.mark.slow
@pytest.mark.parametrize("api", ["keras3", "keras2"])
def test_sweep_of_every_layer_has_no_internal_error(api):
    _assert_sound(layer_sweep.sweep(layer_cases.cases(), [api]))
