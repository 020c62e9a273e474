"""The one class rule (tfopt.verification.classes) on generated scores of every shape it takes."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt.errors import OptionError
from tfopt.verification import classes


@pytest.mark.parametrize("n,c", [(5, 2), (17, 3), (40, 10)])
def test_several_classes_take_the_argmax(n, c):
    rng = np.random.default_rng(n * c)
    scores = rng.normal(size=(n, c))
    labels = rng.integers(0, c, size=n)
    expected = 100.0 * np.mean(scores.argmax(-1) == labels)
    assert classes.top1(scores, labels, classes.threshold(scores)) == pytest.approx(expected)
    assert classes.top1(scores, labels.reshape(n, 1), 0.0) == pytest.approx(expected)  # labels [N, 1]


@pytest.mark.parametrize("shape", [(30,), (30, 1)])
@pytest.mark.parametrize("probabilities", [True, False])
def test_one_score_is_a_threshold_from_the_original(shape, probabilities):
    rng = np.random.default_rng(len(shape))
    logits = rng.normal(size=shape)
    scores = 1 / (1 + np.exp(-logits)) if probabilities else logits
    cut = classes.threshold(scores)
    assert cut == (0.5 if probabilities else 0.0)
    labels = (logits.reshape(-1) > 0).astype(np.int64)
    assert classes.top1(scores, labels, cut) == 100.0
    assert classes.top1(scores, 1 - labels, cut) == 0.0  # an argmax over one unit would give the share of zeros
    overshoot = scores + (0.01 if probabilities else 0.0)  # an artifact past 1: the original's cut still holds
    assert classes.top1(overshoot, labels, cut) >= 90.0
    assert classes.top5(scores, labels) is None
    # a converter's accuracy control (OpenVINO's NNCF) scores by the same rule, the cut from the original's scores
    assert classes.top1_fraction(overshoot, labels, scores) == classes.top1(overshoot, labels, cut) / 100.0


def test_dense_prediction_scores_each_element():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(4, 5, 6, 3))
    labels = rng.integers(0, 3, size=(4, 5, 6))
    assert classes.top1(scores, labels, 0.0) == pytest.approx(100.0 * np.mean(scores.argmax(-1) == labels))


def test_top5_counts_the_label_among_the_five_best():
    scores = np.tile(np.arange(10.0), (3, 1))  # best five: 9..5
    assert classes.top5(scores, np.array([9, 5, 4])) == pytest.approx(200.0 / 3)


def test_labels_of_another_shape_name_both_shapes():
    with pytest.raises(OptionError, match=r"labels of shape \(7,\).*\(3, 4\)"):
        classes.top1(np.zeros((3, 4)), np.zeros(7, np.int64), 0.0)
