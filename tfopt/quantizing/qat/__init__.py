"""Quantization-aware fine-tune: TFMOT's wrappers started from the engine's ranges
(:mod:`.wrappers`) and the short fine-tune itself (:mod:`.finetune`)."""
