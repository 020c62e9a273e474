"""Each converter's own post-training quantization, layer by layer: the target's quantizable
layers and keep-float mechanism (:mod:`.layer_targets`), the per-layer ranking (:mod:`.ranking`) and
the keep-float search (:mod:`.keep_float`)."""
