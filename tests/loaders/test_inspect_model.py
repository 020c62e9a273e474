"""``tfopt inspect`` of a graph fed by a ``tf.data`` iterator lists the inputs tfopt feeds: the
iterator's elements that the outputs read (named, typed and shaped as ``load`` cuts them, so
``--inputs`` takes the names), each with the element it stands for and the iterator cut, and never
the iterator's string handle. Generated: 1-3 components (float and int ids; a single tensor, a tuple
or a dict), fixed or open batch, one-shot / initializable / string-handle iterators, in a frozen
``.pb``, a TF1 SavedModel and a TF1 checkpoint (the cases of ``test_pipeline_inputs``); and a
``PlaceholderWithDefault`` fed from the iterator (the input, its default cut)."""

from __future__ import annotations

import json

import pytest

import tfopt
from tests.helpers import graph_pb
from tests.loaders.test_pipeline_inputs import CASES, DIRECT, FORMATS, _builder, _save_direct
from tfopt import cli


@pytest.fixture(scope="module", params=list(DIRECT))
def saved(request, tmp_path_factory):
    return request.param, _save_direct(request.param, tmp_path_factory.mktemp(request.param))


def _inspect_json(capsys, path: str) -> dict:
    assert cli.main(["inspect", path, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_inspect_lists_the_elements_the_outputs_read_as_load_cuts_them(saved, fmt, capsys):
    case, (paths, _, _, specs) = saved
    info = _inspect_json(capsys, paths[fmt])
    got = sorted((i["name"], i["dtype"], None if i["shape"] is None else tuple(i["shape"])) for i in info["inputs"])
    assert got == sorted(specs)  # the elements only: no string handle, whatever the iterator
    model = tfopt.load(paths[fmt])
    assert [i["name"] for i in info["inputs"]] == [s.name for s in model.inputs]  # what convert feeds, in order
    cut = model.provenance["inputs_from_pipeline"]
    assert {i["name"]: i["from_pipeline"]["element"] for i in info["inputs"]} == cut
    iterator = DIRECT[case][3]
    assert all(i["from_pipeline"]["iterator"] for i in info["inputs"])
    assert info["pipeline_cut"]["iterators"] == sorted({i["from_pipeline"]["iterator"] for i in info["inputs"]})
    assert info["pipeline_cut"]["not_inputs"] == (["handle"] if iterator == "string-handle" else [])


@pytest.mark.parametrize("fmt", [FORMATS[0], FORMATS[2]])
def test_the_inspected_names_are_what_inputs_accepts(fmt, tmp_path, capsys):
    paths, _, _, _ = _save_direct("3-dict-fixed-stringhandle", tmp_path)
    names = [i["name"] for i in _inspect_json(capsys, paths[fmt])["inputs"]]
    frozen, _ = tfopt.freeze(paths[fmt], inputs={n: None for n in names}, verify=False)
    assert sorted(s.name for s in frozen.inputs) == sorted(names)
    assert cli.main(["inspect", paths[fmt]]) == 0
    out = capsys.readouterr().out
    assert "tf.data iterator cut: IteratorFromStringHandleV2" in out and "not an input: handle" in out
    assert all(f"input  {n}" in out for n in names) and "input  handle" not in out


@pytest.mark.parametrize("case", ["one-rank5-string-handle", "two-rank4-rank2-one-shot"])
def test_a_placeholder_with_default_fed_by_the_iterator_says_where_it_comes_from(case, tmp_path, capsys):
    shapes, iterator = CASES[case]
    info = _inspect_json(capsys, graph_pb(tmp_path / "frozen.pb", _builder(shapes, iterator)))
    assert [i["name"] for i in info["inputs"]] == list(shapes)
    assert [i["from_pipeline"]["element"] for i in info["inputs"]] == [f"IteratorGetNext:{k}" for k in range(len(shapes))]
    assert info["pipeline_cut"]["not_inputs"] == (["Placeholder"] if iterator == "string-handle" else [])
