"""Indices into a table the model *computes* from another input: a message-passing graph network
(nmrgnn's chemical-shift predictor, issue 24 set 19) gathers each atom's neighbours, ``h[nlist]``,
where ``h = dense(atoms)`` has one row per atom. The valid range of ``nlist`` is ``[0, N)``, ``N`` the
made-up size of ``atoms``' first axis, not the ``[0, 8)`` of an integer tfopt knows nothing of (the
gather fails at ``N = 2``), nor a constant table's rows. Generated: a graph network over ``atoms [?, F]``,
``nlist [?, K]`` (int32) and ``edges [?, K]``, saved as a SavedModel; ``axis`` gathers along axis 0 of
``h`` or along axis 1 of its transpose (``GatherV2``'s axis), ``layers`` stacks message passes (the
second one's table is computed from the first's gather). One atom with its neighbour list is no
sample either: the report feeds the three inputs whole, where it cuts other batches into rows. A
gather inside each sample (``batch_dims=1``: a row's own positions) is bounded by that axis and cut
into rows as usual."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.helpers import saved_function

ATOL = 1e-5  # float32 dense layers and sums over K neighbours, any runtime
F, K, W = 5, 4, 6  # atom features, neighbours per atom, hidden width


def _graph_network(path, *, axis: int, layers: int) -> str:
    from tfopt._tf import tf

    t = tf()
    rng = np.random.default_rng(abs(axis) * 10 + layers)
    w_in = t.constant(rng.normal(size=[F, W]).astype(np.float32) / F ** 0.5)
    w_msg = [t.constant(rng.normal(size=[W + 1, W]).astype(np.float32) / W ** 0.5) for _ in range(layers)]

    def serve(atoms, nlist, edges):
        h = t.nn.relu(t.matmul(atoms, w_in))  # [N, W]: the table has one row per atom
        if axis == -1:  # per sample: atoms [B, F] repeated over K positions, nlist picks positions of its own row
            table = t.tile(t.expand_dims(h, 1), [1, K, 1]) * t.expand_dims(edges, -1)  # [B, K, W]
            return {"shift": t.reduce_sum(t.gather(table, nlist, batch_dims=1), axis=[1, 2])}
        for w in w_msg:
            if axis == 0:
                neighbours = t.gather(h, nlist)  # [N, K, W]
            else:  # the same rows, gathered along axis 1 of h's transpose
                neighbours = t.transpose(t.gather(t.transpose(h), nlist, axis=1), [1, 2, 0])
            message = t.concat([neighbours, t.expand_dims(edges, -1)], axis=-1)  # [N, K, W + 1]
            h = h + t.nn.tanh(t.reduce_sum(t.einsum("nkc,cw->nkw", message, w), axis=1))
        return {"shift": t.reduce_sum(h, axis=-1)}

    spec = t.TensorSpec
    return saved_function(path, serve, [spec([None, F], t.float32, name="atoms"),
                                        spec([None, K], t.int32, name="nlist"),
                                        spec([None, K], t.float32, name="edges")])


@pytest.mark.parametrize(("axis", "layers"), [(0, 2), (1, 1), (-1, 0)], ids=["axis0-2layers", "axis1-1layer", "per-row"])
def test_neighbour_indices_stay_inside_the_computed_table_and_verify(tmp_path, axis, layers):
    from tfopt.verification.input_structure import fed_whole

    model = _graph_network(tmp_path / "gnn", axis=axis, layers=layers)
    frozen, report = tfopt.freeze(model)
    at = report.verified_at
    rows = at.feeds["atoms"].shape[0] if axis >= 0 else K
    assert at.source == "made up" and at.feeds["nlist"].shape[0] == at.feeds["atoms"].shape[0]
    assert at.feeds["nlist"].min() >= 0 and at.feeds["nlist"].max() < rows
    for feeds in (at.feeds, at.with_batch(frozen.inputs, 1, graph_def=frozen.graph_def).feeds):
        assert feeds["nlist"].max() < (feeds["atoms"].shape[0] if axis >= 0 else K)
    assert all(d.max_abs_err <= ATOL for d in report.verification)
    whole = fed_whole(frozen.graph_def, {"atoms": 0, "nlist": 0, "edges": 0})
    assert whole == ({"atoms": None, "nlist": None, "edges": None} if axis >= 0 else {"atoms": 0, "nlist": 0, "edges": 0})


@pytest.mark.slow  # the class's fast cases are the freezes above; this one writes and verifies all three targets
def test_the_graph_network_converts_to_every_target_within_the_bound(tmp_path):
    model = _graph_network(tmp_path / "gnn", axis=0, layers=2)
    targets = ["tflite", "onnx", "openvino"]
    result = tfopt.convert(model, str(tmp_path / "out"), to=targets, report_runs=1)
    assert sorted(a.format for a in result.artifacts) == sorted(targets)
    assert all(row["fidelity"]["max_abs_err"] <= ATOL for row in result.report["artifacts"])
