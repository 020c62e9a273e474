"""Selective quantization: rank each layer's quantization error in the target's own runtime
(:mod:`.layers`, through each target's mechanism in :mod:`.layer_targets`), and keep the worst
layers in float (:mod:`.keep_float`)."""
