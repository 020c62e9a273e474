"""The builder of toxic-comment-classifier (held-out set 22): the package ships Keras 3 weights only
(``model/model.weights.h5``) and rebuilds its model in ``ToxicCommentClassifier.__init__``; run from
:mod:`tfopt.coverage.corpus_builds` (kept apart since that module is full)."""

from __future__ import annotations

import os


def toxic_comment(root: str, out: str) -> None:
    from toxic_classifier import model as package

    # its __init__ reads model/model.weights.h5 and model/tokenizer.pickle beside its module: the archive's
    package.__file__ = os.path.join(root, "toxic_classifier", "model.py")

    # ToxicCommentClassifier(): Input(100) -> Embedding -> Bidirectional(LSTM(50, recurrent_dropout)) -> ...,
    # compile, load_weights(model/model.weights.h5); the user keeps the built model as a Keras 3 .keras
    model = package.ToxicCommentClassifier().model
    model.save(out if out.endswith(".keras") else out + ".keras")
    if not out.endswith(".keras"):
        os.rename(out + ".keras", out)
