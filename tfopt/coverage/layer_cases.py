"""The Keras layer sweep's cases: each public layer class of Keras 3 / Keras 2 in a tiny model with
a representative configuration, and the configurations that change the graph (padding,
channels_first, dilation, go_backwards, return_sequences/state, masks, time_major, groups,
depth_multiplier, merge modes, unroll, wrappers, attention masks, Lambda). A case is data:
``(layer, variant, input shapes, config)``, or a builder for wrappers, merges, masks and Lambda;
``build(K)`` takes the ``keras`` or ``tf_keras`` module, so one case serves both Keras versions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Layers that hold state learned from data (adapt/vocabulary) or take strings/ragged input: the
# sweep does not make data up for them.
NEEDS_DATA = {
    "TextVectorization": "needs a vocabulary adapted from text (string input)",
    "StringLookup": "string input and a vocabulary", "IntegerLookup": "needs a vocabulary from data",
    "Hashing": "string/int hashing: covered by the corpus' lookup model", "HashedCrossing": "needs paired categorical data",
    "TextToSequence": "string input", "MelSpectrogram": "needs audio-length input", "STFTSpectrogram": "needs audio input",
    "Layer": "abstract base", "InputLayer": "every model has one", "InputSpec": "not a layer",
    "Wrapper": "abstract base", "RNN": "covered through its cells", "AbstractRNNCell": "abstract base",
    "DenseFeatures": "feature columns (dict input)", "Pipeline": "a container", "TFSMLayer": "loads another model",
    "SpectralNormalization": "power iteration updates at inference", "StackedRNNCells": "covered by RNN cells",
    "Rescaling": "", "Experimental": "not a layer", "experimental": "not a layer",
}


@dataclass(frozen=True)
class Case:
    """One layer configuration. ``build(K)`` returns an uncompiled model for ``K`` = the ``keras`` or
    ``tf_keras`` module; ``apis`` are the Keras versions it applies to."""

    layer: str
    variant: str
    build: Callable[[Any], Any]
    apis: tuple[str, ...] = ("keras3", "keras2")
    options: dict[str, Any] = field(default_factory=dict)  # what a user passes (unsafe=True for a Lambda)

    @property
    def name(self) -> str:
        return f"{self.layer}({self.variant})" if self.variant else self.layer


def one(layer: str, shape: Sequence[int | None], variant: str = "", *, dtype: str = "float32",
        apis: tuple[str, ...] = ("keras3", "keras2"), **config: Any) -> Case:
    """``layer(**config)`` applied to one input of ``shape`` (batch excluded)."""
    def build(K: Any) -> Any:
        x = K.Input(tuple(shape), dtype=dtype, name="x")
        return K.Model(x, getattr(K.layers, layer)(**config)(x))
    return Case(layer, variant, build, apis)


def after_dense(layer: str, shape: Sequence[int], *, apis: tuple[str, ...] = ("keras3", "keras2"), **config: Any) -> Case:
    """``Dense -> layer``: a layer that is the identity at inference sits inside a model, as in real
    ones; the ``alone`` cases keep the model whose output is its input passed through."""
    def build(K: Any) -> Any:
        x = K.Input(tuple(shape), name="x")
        return K.Model(x, getattr(K.layers, layer)(**config)(K.layers.Dense(shape[-1])(x)))
    return Case(layer, "after Dense", build, apis)


def _merge(layer: str, shapes: Sequence[Sequence[int]], variant: str = "", **config: Any) -> Case:
    def build(K: Any) -> Any:
        xs = [K.Input(tuple(s), name=f"x{i}") for i, s in enumerate(shapes)]
        return K.Model(xs, getattr(K.layers, layer)(**config)(xs))
    return Case(layer, variant, build)


def _wrapped(wrapper: str, inner: str, shape: Sequence[int], variant: str, wrapper_config: dict[str, Any],
             **config: Any) -> Case:
    def build(K: Any) -> Any:
        x = K.Input(tuple(shape), name="x")
        return K.Model(x, getattr(K.layers, wrapper)(getattr(K.layers, inner)(**config), **wrapper_config)(x))
    return Case(wrapper, variant, build)


def _masked(rnn: str, variant: str, **config: Any) -> Case:
    """Token ids -> Embedding(mask_zero=True) -> ``rnn``: the mask reaches the recurrent layer."""
    def build(K: Any) -> Any:
        x = K.Input((7,), dtype="int32", name="tokens")
        h = K.layers.Embedding(20, 4, mask_zero=True)(x)
        return K.Model(x, getattr(K.layers, rnn)(**config)(h))
    return Case(rnn, variant, build)


def _state_out(rnn: str, variant: str, **config: Any) -> Case:
    def build(K: Any) -> Any:
        x = K.Input((6, 3), name="x")
        return K.Model(x, list(getattr(K.layers, rnn)(5, return_state=True, **config)(x)))
    return Case(rnn, variant, build)


def _attention(layer: str, variant: str, *, masked: bool, **config: Any) -> Case:
    def build(K: Any) -> Any:
        q, v = K.Input((5, 8), name="query"), K.Input((6, 8), name="value")
        if layer == "MultiHeadAttention":
            inputs = [q, v]
            if masked:
                m = K.Input((5, 6), name="mask")
                inputs.append(m)
                return K.Model(inputs, K.layers.MultiHeadAttention(**config)(q, v, attention_mask=m))
            return K.Model(inputs, K.layers.MultiHeadAttention(**config)(q, v))
        if masked:
            ids = K.Input((6,), dtype="int32", name="value_ids")
            v_masked = K.layers.Embedding(10, 8, mask_zero=True)(ids)
            return K.Model([q, ids], getattr(K.layers, layer)(**config)([q, v_masked]))
        return K.Model([q, v], getattr(K.layers, layer)(**config)([q, v]))
    return Case(layer, variant, build)


def _lambda(K: Any) -> Any:
    x = K.Input((6,), name="x")
    return K.Model(x, K.layers.Lambda(_square_plus_one)(x))


def _square_plus_one(t: Any) -> Any:
    return t * t + 1.0


def _rnn_cell(cell: str, variant: str = "", **config: Any) -> Case:
    def build(K: Any) -> Any:
        x = K.Input((6, 3), name="x")
        return K.Model(x, K.layers.RNN(getattr(K.layers, cell)(5), **config)(x))
    return Case(cell, variant, build)


def _recurrent(rnn: str) -> list[Case]:
    seq = (6, 3)
    cases = [one(rnn, seq, units=5), one(rnn, seq, "return_sequences", units=5, return_sequences=True),
             one(rnn, seq, "go_backwards", units=5, go_backwards=True), one(rnn, seq, "unroll", units=5, unroll=True),
             _state_out(rnn, "return_state"), _masked(rnn, "mask_zero", units=5),
             _masked(rnn, "mask_zero,return_sequences", units=5, return_sequences=True),
             one(rnn, (None, 3), "variable length", units=5)]
    if rnn == "GRU":
        cases.append(one(rnn, seq, "reset_after=False", units=5, reset_after=False))
    cases.append(Case(rnn, "time_major", lambda K: _time_major(K, rnn), apis=("keras2",)))
    for mode in ("concat", "sum", "mul", "ave"):
        cases.append(_wrapped("Bidirectional", rnn, seq, f"{rnn},merge_mode={mode}", {"merge_mode": mode}, units=4,
                              return_sequences=True))
    return cases


def _time_major(K: Any, rnn: str) -> Any:
    x = K.Input((6, 3), name="x")
    return K.Model(x, getattr(K.layers, rnn)(5, time_major=True, return_sequences=True)(x))


def _conv(layer: str, rank: int) -> list[Case]:
    spatial = (9, 10, 8)[:rank]
    shape, first = (*spatial, 4), (4, *spatial)
    depthwise = layer.startswith("Depthwise")
    base: dict[str, Any] = {} if depthwise else {"filters": 6}
    if layer.startswith("Separable") or depthwise:
        base = {**base, "depth_multiplier": 2}
    cases = [one(layer, shape, **base, kernel_size=3), one(layer, shape, "padding=same", **base, kernel_size=3, padding="same"),
             one(layer, shape, "strides=2", **base, kernel_size=3, strides=2, padding="same"),
             one(layer, first, "channels_first", **base, kernel_size=3, data_format="channels_first")]
    if "Transpose" not in layer:
        cases.append(one(layer, shape, "dilation_rate=2", **base, kernel_size=3, dilation_rate=2, padding="same"))
    if layer in ("Conv1D", "Conv2D", "Conv3D"):
        cases.append(one(layer, shape, "groups=2", filters=6, kernel_size=3, groups=2))
    if layer == "Conv1D":
        cases.append(one(layer, shape, "padding=causal", filters=6, kernel_size=3, padding="causal"))
    return cases


def _pool(layer: str, rank: int) -> list[Case]:
    spatial = (8, 10, 6)[:rank]
    shape, first = (*spatial, 3), (3, *spatial)
    if layer.startswith("Global"):
        return [one(layer, shape), one(layer, first, "channels_first", data_format="channels_first"),
                one(layer, shape, "keepdims", keepdims=True)]
    return [one(layer, shape), one(layer, shape, "padding=same,strides=3", pool_size=2, strides=3, padding="same"),
            one(layer, first, "channels_first", data_format="channels_first")]


def cases() -> list[Case]:
    """Every case, the layers most frequent in real models first."""
    out: list[Case] = [one("Dense", (6,), units=4), one("Dense", (3, 6), "3-D input", units=4, activation="relu"),
                       one("EinsumDense", (5, 6), equation="abc,cd->abd", output_shape=(None, 4), bias_axes="d")]
    for rnn in ("LSTM", "GRU", "SimpleRNN"):
        out += _recurrent(rnn)
    out += [_rnn_cell(c) for c in ("LSTMCell", "GRUCell", "SimpleRNNCell")]
    out += [one("ConvLSTM2D", (3, 6, 6, 2), filters=3, kernel_size=3, padding="same"),
            one("ConvLSTM1D", (3, 6, 2), filters=3, kernel_size=3), one("ConvLSTM3D", (2, 4, 4, 4, 2), filters=2, kernel_size=3)]
    out += [_wrapped("TimeDistributed", "Dense", (4, 6), "Dense", {}, units=3),
            _wrapped("TimeDistributed", "Conv2D", (3, 6, 6, 2), "Conv2D", {}, filters=3, kernel_size=3)]
    for layer, rank in (("Conv1D", 1), ("Conv2D", 2), ("Conv3D", 3), ("Conv1DTranspose", 1), ("Conv2DTranspose", 2),
                        ("Conv3DTranspose", 3), ("SeparableConv1D", 1), ("SeparableConv2D", 2),
                        ("DepthwiseConv1D", 1), ("DepthwiseConv2D", 2)):
        out += _conv(layer, rank)
    out += [one("BatchNormalization", (5, 5, 4)), one("BatchNormalization", (4, 5, 5), "axis=1", axis=1),
            one("LayerNormalization", (5, 6)), one("LayerNormalization", (4, 5, 6), "axis=[1,2]", axis=[1, 2]),
            one("GroupNormalization", (5, 5, 6), groups=3), one("UnitNormalization", (6,)),
            one("RMSNormalization", (5, 6), apis=("keras3",)),
            one("Normalization", (5,), mean=[0.5] * 5, variance=[2.0] * 5),
            one("Normalization", (5,), "invert", mean=[0.5] * 5, variance=[2.0] * 5, invert=True)]
    out += [_attention("MultiHeadAttention", "", masked=False, num_heads=2, key_dim=4),
            _attention("MultiHeadAttention", "attention_mask", masked=True, num_heads=2, key_dim=4),
            _attention("Attention", "", masked=False), _attention("Attention", "mask_zero", masked=True),
            _attention("Attention", "use_scale,causal", masked=False, use_scale=True, score_mode="dot"),
            _attention("AdditiveAttention", "", masked=False), _attention("AdditiveAttention", "mask_zero", masked=True),
            _attention("GroupQueryAttention", "", masked=False, head_dim=4, num_query_heads=2, num_key_value_heads=1)]
    for layer, rank in (("MaxPooling1D", 1), ("MaxPooling2D", 2), ("MaxPooling3D", 3), ("AveragePooling1D", 1),
                        ("AveragePooling2D", 2), ("AveragePooling3D", 3), ("GlobalMaxPooling1D", 1),
                        ("GlobalMaxPooling2D", 2), ("GlobalMaxPooling3D", 3), ("GlobalAveragePooling1D", 1),
                        ("GlobalAveragePooling2D", 2), ("GlobalAveragePooling3D", 3)):
        out += _pool(layer, rank)
    out += [one("AdaptiveAveragePooling2D", (8, 8, 3), output_size=4, apis=("keras3",)),
            one("AdaptiveMaxPooling2D", (8, 8, 3), output_size=4, apis=("keras3",))]
    out += [one("Reshape", (4, 6), target_shape=(8, 3)), one("Reshape", (4, 6), "-1", target_shape=(-1, 2)),
            one("Permute", (4, 5, 6), dims=(3, 1, 2)), one("Flatten", (4, 5, 3)),
            one("Flatten", (3, 4, 5), "channels_first", data_format="channels_first"),
            one("RepeatVector", (6,), n=3), _wrapped("TimeDistributed", "Flatten", (3, 4, 2), "Flatten", {}),
            one("Cropping1D", (8, 3), cropping=(1, 2)), one("Cropping2D", (8, 8, 3), cropping=((1, 2), (2, 1))),
            one("Cropping3D", (6, 6, 6, 2), cropping=1), one("ZeroPadding1D", (8, 3), padding=2),
            one("ZeroPadding2D", (6, 6, 3), padding=(1, 2)), one("ZeroPadding3D", (4, 4, 4, 2), padding=1),
            one("UpSampling1D", (5, 3), size=2), one("UpSampling2D", (5, 5, 3), size=2),
            one("UpSampling2D", (5, 5, 3), "bilinear", size=2, interpolation="bilinear"),
            one("UpSampling3D", (3, 3, 3, 2), size=2)]
    out += [Case("Masking", "", lambda K: _masking(K)),
            one("Embedding", (7,), dtype="int32", input_dim=30, output_dim=4),
            one("Activation", (6,), activation="tanh"), one("ReLU", (6,), max_value=6.0),
            one("LeakyReLU", (6,)), one("PReLU", (5, 6)), one("ELU", (6,)), one("Softmax", (5, 6)),
            one("ThresholdedReLU", (6,), theta=0.5, apis=("keras2",)),
            after_dense("Dropout", (6,), rate=0.5), after_dense("SpatialDropout1D", (5, 6), rate=0.5),
            after_dense("SpatialDropout2D", (5, 5, 3), rate=0.5), after_dense("GaussianNoise", (6,), stddev=0.1),
            after_dense("GaussianDropout", (6,), rate=0.1), after_dense("AlphaDropout", (6,), rate=0.1),
            after_dense("ActivityRegularization", (6,), l1=0.01), Case("Lambda", "plain function", _lambda, options={"unsafe": True}),
            after_dense("Identity", (6,), apis=("keras3",)),
            # alone: the output is the input once frozen (an Identity chain the converters collapse)
            one("Dropout", (6,), "alone", rate=0.5), one("GaussianNoise", (5, 6), "alone", stddev=0.1)]
    out += [_merge(layer, [(5, 4), (5, 4)]) for layer in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")]
    out += [_merge("Concatenate", [(5, 4), (5, 3)]), _merge("Dot", [(5, 4), (5, 4)], axes=2),
            _merge("Dot", [(6,), (6,)], "normalize", axes=1, normalize=True)]
    out += [one("Rescaling", (5, 5, 3), scale=1 / 255.0, offset=-0.5), one("Resizing", (10, 12, 3), height=5, width=6),
            one("Resizing", (10, 12, 3), "nearest", height=5, width=6, interpolation="nearest"),
            one("CenterCrop", (10, 12, 3), height=6, width=6),
            one("Discretization", (6,), bin_boundaries=[-1.0, 0.0, 1.0]),
            one("CategoryEncoding", (4,), dtype="int32", num_tokens=8, output_mode="multi_hot"),
            after_dense("RandomFlip", (6, 6, 3)), after_dense("RandomRotation", (6, 6, 3), factor=0.2),
            after_dense("RandomZoom", (6, 6, 3), height_factor=0.2), after_dense("RandomContrast", (6, 6, 3), factor=0.2)]
    return out


def _masking(K: Any) -> Any:
    x = K.Input((6, 3), name="x")
    return K.Model(x, K.layers.LSTM(4)(K.layers.Masking(mask_value=0.0)(x)))


def keras_module(api: str) -> Any:
    if api == "keras3":
        import keras
        return keras
    import tf_keras
    return tf_keras


def uncovered(api: str) -> dict[str, str]:
    """Public layer classes of ``api`` with no case: name -> why (data needed, or not tried)."""
    K = keras_module(api)
    tried = {getattr(K.layers, c.layer, None) for c in cases()}  # aliases (MaxPool2D, Convolution2D) count as tried
    names = [n for n in dir(K.layers) if n[:1].isupper() and isinstance(getattr(K.layers, n), type)]
    return {n: NEEDS_DATA.get(n) or _why_not(n) for n in sorted(names) if getattr(K.layers, n) not in tried}


def _why_not(name: str) -> str:
    if name.startswith("Random") or name in ("AugMix", "CutMix", "MixUp", "RandAugment"):
        return "data augmentation: the identity at inference (RandomFlip/Rotation/Zoom/Contrast are swept)"
    if name in ("JaxLayer", "FlaxLayer", "TorchModuleWrapper"):
        return "wraps another framework's module: not a TensorFlow graph"
    return "no case yet"
