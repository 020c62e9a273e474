"""Builders for the two detectors of the 24th held-out set that a user cannot load straight from the
archive: stella's flare CNN (its trained ensemble ships zipped at the top of the sdist) and microfaune's
bird-song detector (weights plus the package's own ``create_model``). Registered in
:data:`tfopt.coverage.corpus_builds.BUILDERS`; run in that module's child process."""

from __future__ import annotations

import os
import sys
import types
import zipfile
from collections.abc import Callable


def _stella(member: str) -> Callable[[str, str], None]:
    def build(root: str, out: str) -> None:
        # stella's README: unzip final_models.zip, then stella.ConvNN(...).predict(modelname=...) runs
        # keras.models.load_model on one ensemble member; the member's bytes are the model, unchanged
        with zipfile.ZipFile(os.path.join(root, "final_models.zip")) as archive, open(out, "wb") as f:
            f.write(archive.read(member))

    return build


def _microfaune(root: str, out: str) -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # detection.py: tf.keras of TF 2.3, tf.math on Keras tensors
    sys.modules.setdefault("librosa", types.ModuleType("librosa"))  # audio.py: spectrograms, not the model
    from microfaune.detection import RNNDetector

    # the package's default weights (RNN_WEIGHTS_FILE), from the archive: code_dir copies only the modules
    detector = RNNDetector(os.path.join(root, "microfaune", "data", "model_weights_tf2-20200912_173814.h5"))
    detector.model.save(out, save_format="tf")  # a Keras 2 SavedModel, as a TF 2.3 user keeps it


LATER_BUILDERS: dict[str, Callable[[str, str], None]] = {
    "stella-cnn": _stella("run01/ensemble_s0038_i0350_b0.73.h5"), "microfaune-rnn": _microfaune}
