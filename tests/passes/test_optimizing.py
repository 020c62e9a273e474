"""Optimizing transformer blocks: the TF-runtime graph keeps the model's numbers with oneDNN on or
off (.ci/run runs this file in both lanes). With oneDNN, TensorFlow fuses layer norms into
_MklLayerNorm with epsilon 0.001 whatever the model says; tfopt must not carry that into the
graphs it verifies or writes."""

from __future__ import annotations

import numpy as np
import pytest

import tfopt
from tests.helpers import as_served
from tfopt._tf import tf
from tfopt.loaders.keras import model_from_keras
from tfopt.runtimes.tensorflow import GraphRunner


def _gelu_erf(x):  # Hugging Face's TF `gelu`
    return 0.5 * x * (1.0 + tf().math.erf(x / np.float32(np.sqrt(2.0))))


GELUS = {"exact": lambda x: tf().nn.gelu(x), "tanh": lambda x: tf().nn.gelu(x, approximate=True), "erf_by_hand": _gelu_erf}


def vit_block(*, tokens: int, width: int, heads: int, eps: float, gelu: str, final_eps: float):
    """Pre-norm ViT encoder block in tf-keras (as Hugging Face's TF models build it), random weights.
    tf-keras computes a layer norm with epsilon >= 1.001e-5 through FusedBatchNormV3, a smaller
    one with Mean/SquaredDifference/Rsqrt: ``final_eps`` picks the form of the last one."""
    import tf_keras as keras

    layers = keras.layers
    x = keras.Input((tokens, width), name="x")
    h = layers.LayerNormalization(epsilon=eps)(x)
    h = x + layers.MultiHeadAttention(heads, width // heads)(h, h)
    m = layers.Dense(width, name="out_proj")(layers.Activation(GELUS[gelu])(layers.Dense(2 * width)(
        layers.LayerNormalization(epsilon=eps)(h))))
    model = keras.Model(x, layers.LayerNormalization(epsilon=final_eps, name="final_norm")(h + m))
    rng = np.random.default_rng(tokens)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) * 0.3 for w in model.get_weights()])
    return model


@pytest.mark.parametrize(("tokens", "width", "heads", "eps", "gelu", "final_eps"), [
    (5, 16, 2, 1e-12, "exact", 1e-3), (9, 32, 4, 1e-6, "tanh", 1e-6), (3, 24, 3, 1e-12, "erf_by_hand", 1e-3)],
    ids=["5x16-eps1e-12-gelu", "9x32-eps1e-6-gelu_tanh", "3x24-eps1e-12-hf_gelu"])
def test_vit_block_keeps_its_numbers_in_the_tf_runtime_graph(tokens, width, heads, eps, gelu, final_eps):
    model = vit_block(tokens=tokens, width=width, heads=heads, eps=eps, gelu=gelu, final_eps=final_eps)
    _, runtime, _, _ = tfopt.optimize(model_from_keras(model, {"format": "keras"}))  # verifies both graphs
    for node in runtime.graph_def.node:
        if node.op == "_MklLayerNorm":  # fused only with oneDNN
            assert node.attr["epsilon"].f in (pytest.approx(eps, rel=1e-6), pytest.approx(final_eps, rel=1e-6))
    # Rows of small variance, where a wrong epsilon shows most.
    x = (np.random.default_rng(1).normal(size=(3, tokens, width)) * 1e-2).astype(np.float32)
    np.testing.assert_allclose(GraphRunner(runtime)({"x": x})["final_norm"], model(x).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(as_served(runtime, x), model(x).numpy(), rtol=1e-4, atol=1e-4)
