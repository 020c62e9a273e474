"""A constant channel slice of the logits (``logits[..., k]`` for a per-class metric, map, summary or a
dice loss) is no head of its own: the logits carry it (tfopt.loaders.output_choice). Generated TF1
training checkpoints of several sizes, classes and names; the slices are listed as alternatives."""

from __future__ import annotations

import pytest

import tfopt
from tests.training_graphs import segmentation_checkpoint

USES = [("sink",), ("metric",), ("loss",), ("sink", "summary", "loss"), ("metric", "loss")]
SIZES = [(3, 4, 8, "net", "logits"), (1, 2, 6, "unet", "final_conv/BiasAdd"), (2, 6, 4, "model", "y")]


@pytest.mark.parametrize("shape", SIZES, ids=[f"{c}ch-{k}cls-{s}px" for c, k, s, _, _ in SIZES])
@pytest.mark.parametrize("uses", USES, ids=["+".join(u) for u in USES])
def test_a_slice_of_the_logits_is_no_head(tmp_path, uses, shape):
    channels, classes, size, scope, head = shape
    built = segmentation_checkpoint(tmp_path, towers=1, channels=channels, classes=classes, size=size,
                                    source="placeholder", slice_uses=uses, seed=classes, names=(scope, head))
    model = tfopt.load(built.prefix)
    assert [s.node for s in model.outputs] == [built.logits["eval"]]
    alternatives = model.provenance["output_alternatives"]
    if "sink" in uses or "metric" in uses:
        assert any(f"slice of {built.logits['eval']}" in why for why in alternatives.values()), alternatives


def test_a_network_whose_only_output_is_a_slice_keeps_it(tmp_path):
    """``out = conv(x)[..., 0]`` and nothing else: the slice is the model's output, not a form of a head."""
    from tests.helpers import graph_pb

    def build(t):
        x = t.compat.v1.placeholder(t.float32, [None, 6, 6, 2], name="x")
        maps = t.nn.conv2d(x, t.ones([3, 3, 2, 4]), 1, "SAME")
        t.identity(maps[..., 0], name="first_map")

    path = graph_pb(tmp_path / "m.pb", build)
    assert [s.name for s in tfopt.load(path).outputs] == ["first_map"]
