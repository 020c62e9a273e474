"""The class a classifier's output predicts: one rule for every accuracy tfopt measures.

For scores ``s`` with the samples on axis 0 and integer labels ``y``:

- **several classes** (``s.shape[-1] > 1``): the class is ``argmax(s, axis=-1)``; a dense
  prediction (``s`` of shape ``[N, H, W, C]`` with ``y`` of shape ``[N, H, W]``) is scored per
  element;
- **one score per sample** (``s`` of shape ``[N]`` or ``[N, 1]``: a binary classifier with one
  sigmoid or logit unit): the class is ``s > t``. The threshold ``t`` is 0.5 when the original
  model's scores all lie in [0, 1] (probabilities) and 0 otherwise (logits). It is taken from the
  original's scores and used for every artifact, so a quantized probability that overshoots 1 does
  not move the decision boundary.

An argmax over a last axis of size 1 is always class 0: that accuracy would only count the labels
that are 0, and every artifact's drop would be 0.
"""

from __future__ import annotations

import numpy as np

from tfopt.errors import OptionError


def threshold(reference: np.ndarray) -> float:
    """The decision threshold of a one-score classifier: 0.5 for probabilities, else 0 (logits)."""
    values = np.asarray(reference, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return 0.5 if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0 else 0.0


def is_binary(scores: np.ndarray, labels: np.ndarray) -> bool:
    """One score per sample: ``[N]`` or ``[N, 1]`` (labels ``[N]`` or ``[N, 1]``)."""
    scores = np.asarray(scores)
    return scores.size == len(labels) == np.asarray(labels).size


def predicted(scores: np.ndarray, labels: np.ndarray, cut: float) -> np.ndarray:
    """The predicted classes, shaped like ``labels``; ``cut`` from :func:`threshold` (used only
    for one-score outputs)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if is_binary(scores, labels):
        return (scores.reshape(labels.shape) > cut).astype(np.int64)
    classes = scores.argmax(-1)
    if classes.shape == labels.shape:
        return classes
    if classes.size == labels.size:  # e.g. labels [N, 1] against scores [N, C]
        return classes.reshape(labels.shape)
    flat = scores.reshape(len(scores), -1)
    if flat.shape[0] == labels.size:  # one class axis after flattening (as Keras scores [N, 1, C])
        return flat.argmax(-1).reshape(labels.shape)
    raise OptionError(f"labels of shape {labels.shape} do not match the first output's shape {scores.shape}: "
                      "integer labels need one class per sample (scores [N, C] or [N]), or one per element "
                      "of a dense prediction (scores [N, ..., C], labels [N, ...]). Give labels of that shape "
                      "in the data's 'labels' array, or a --metric.")


def sample_classes(scores: np.ndarray, cut: float) -> np.ndarray:
    """One class per sample, with no labels to shape it: the scores of a sample flattened, then
    the one-score rule or the argmax (for agreement between the original and an artifact)."""
    flat = np.asarray(scores).reshape(len(scores), -1)
    return (flat[:, 0] > cut).astype(np.int64) if flat.shape[1] == 1 else flat.argmax(-1)


def top1(scores: np.ndarray, labels: np.ndarray, cut: float) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * float(np.mean(predicted(scores, labels, cut) == np.asarray(labels)))


def top1_fraction(scores: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> float:
    """Top-1 accuracy as a fraction, a one-score classifier's threshold taken from ``reference`` (the original
    model's scores, :func:`threshold`): what a converter's own accuracy control scores its candidates by
    (:class:`tfopt.emitters.openvino.AccuracyControl`)."""
    return top1(scores, labels, threshold(reference)) / 100.0


def top5(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Top-5 accuracy in percent: the label among the five highest scores of its class axis.
    None for a one-score classifier, whose two classes are always within any five."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if is_binary(scores, labels):
        return None
    best = np.argsort(-scores, axis=-1)[..., :5]
    best = best.reshape(-1, best.shape[-1])
    if best.shape[0] != labels.size:  # one class axis after flattening, as in predicted()
        best = np.argsort(-scores.reshape(len(scores), -1), axis=-1)[:, :5]
    return 100.0 * float(np.mean(np.any(best == labels.reshape(-1, 1), axis=-1)))
