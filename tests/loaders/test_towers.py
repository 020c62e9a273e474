"""A TF1 training graph that builds its network twice — a train tower (batch statistics, dropout on,
the loss and Adam) and an eval tower (moving statistics, dropout off) sharing variables through
``reuse=True`` — has one head: the eval tower's logits (tfopt.loaders.towers). Generated graphs of
several sizes and scope names, fed by placeholders or ``tf.data`` iterators, TF1 and TF2 dropout;
the frozen eval tower holds TensorFlow's numbers."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.training_graphs import segmentation_checkpoint
from tfopt.runtimes.tensorflow import GraphRunner

CASES = {  # (source, dropout, channels, classes, size, scope, head name)
    "placeholder-v2": ("placeholder", "v2", 3, 4, 8, "net", "logits"),
    "iterator-v1": ("iterator", "v1", 2, 5, 6, "unet", "final_conv"),
    "iterator-v2-wide": ("iterator", "v2", 4, 2, 10, "m0", "out"),
    "placeholder-v1": ("placeholder", "v1", 1, 3, 4, "seg", "scores"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_eval_tower_is_the_head(tmp_path, case):
    source, dropout, channels, classes, size, scope, head = CASES[case]
    built = segmentation_checkpoint(tmp_path, towers=2, channels=channels, classes=classes, size=size,
                                    source=source, dropout=dropout, seed=len(case), names=(scope, head),
                                    slice_uses=("metric",))
    model = tfopt.load(built.prefix)
    assert [s.node for s in model.outputs] == [built.logits["eval"]]
    why = model.provenance["output_alternatives"][built.logits["train"]]
    assert "training-mode tower" in why and built.logits["eval"] in why and "batch statistics" in why
    assert len(model.inputs) == 1  # the eval tower's images only: no labels, no train input
    frozen, _ = tfopt.freeze(built.prefix)
    got = GraphRunner(frozen)({model.inputs[0].name: built.images})[frozen.outputs[0].name]
    np.testing.assert_allclose(got, built.expected, atol=1e-5, rtol=1e-5)


def test_a_single_network_differentiated_by_its_loss_is_kept(tmp_path):
    """One copy of the network (its loss differentiated: training mode) has no tower to prefer."""
    built = segmentation_checkpoint(tmp_path, towers=1, source="placeholder", slice_uses=("metric",))
    assert [s.node for s in tfopt.load(built.prefix).outputs] == [built.logits["eval"]]
