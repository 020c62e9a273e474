"""Builders of the 23rd held-out set's packages that ship weights plus code (lanceotron, odachi): each model
built the way the package builds it (its own model function, then ``load_weights``), saved as its users
would keep it. Registered in :data:`tfopt.coverage.corpus_builds.BUILDERS`; run the same way, in a child
process with the package's modules importable."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable


def _lanceotron(root: str, out: str) -> None:
    # lanceotron.utils.build_model (tensorflow.keras: Keras 3 under TF >= 2.16) reads its weights through
    # pkg_resources.resource_filename("lanceotron.static", ...): the unpacked archive's copy
    static = types.ModuleType("pkg_resources")
    static.resource_filename = lambda package, name: os.path.join(root, *package.split("."), name)  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = static
    from lanceotron.utils import build_model

    model = build_model()  # two inputs (deep (2000, 1), wide (12, 1)), three softmax heads
    model.save(out + ".keras")  # a Keras 3 .keras, as a user of lanceotron 1.2.7 keeps it today
    os.rename(out + ".keras", out)


def _odachi_embed(root: str, out: str) -> None:
    # odachi (TF 2.1, 2020) builds _OdachiEngine.embed as ConvEmbed(depth=4, knock=knock) (Odachi(knock=0),
    # the default) and load_weights its .h5: a subclassed tf.keras model, Keras 2 as in its day
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    from odachi.engine.layers import ConvEmbed

    embed = ConvEmbed(depth=4, knock=0)
    # odachi.data.conv.Conv pads every molecule to 130 atoms of 41 features, batch 1
    embed([np.zeros((1, 130, 130), np.float32), np.zeros((1, 130, 41), np.float32)])
    embed.load_weights(os.path.join(root, "odachi", "engine", "models", "odachi_embed_v1_e9.h5"))
    embed.save(out, save_format="tf")  # a Keras 2 SavedModel, as a TF 2.x user of its day keeps it


BUILDERS: dict[str, Callable[[str, str], None]] = {"lanceotron": _lanceotron, "odachi-embed": _odachi_embed}
