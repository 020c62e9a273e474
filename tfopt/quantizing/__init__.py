"""Quantization, in three parts:

- :mod:`.engine`: tfopt's int8 engine, int8 decided once in the TF graph for every target
  (statistics, ranges, placement, fake quants, the weight transforms and the plan of what it builds);
- :mod:`.native`: each converter's own post-training quantization, layer by layer (the target's
  quantizable layers, the per-layer ranking and the keep-float search);
- :mod:`.qat`: the quantization-aware fine-tune through TFMOT, started from the engine's ranges.

:mod:`.int8_ops` and :mod:`.int8_fusion` read which kernels any int8 artifact really runs."""
