"""Emitters: one module per target, each ``emit_X(model, path, *, ...) -> str``, plus ``emit(job)``,
the one-argument form its record in :mod:`tfopt.targets` names (it reads the target's options
from the :class:`~tfopt.targets.EmitJob` and calls ``emit_X``).

What they share is the shape: a frozen :class:`tfopt.graph.Model` and an output path,
positionally, then keyword-only options, returning the file written. The options themselves are
each target's own keywords (no shared options object):

=================  ================================================================================
emitter            keyword-only options
=================  ================================================================================
emit_tflite        precision, calibration, keep_float, int8_io, allow_tf_ops, quantization_aware,
                   sparse
emit_onnx          precision, calibration, keep_float, opset, reduce_range, converted
emit_openvino      precision, calibration, keep_float, preprocess, accuracy_control, converted
emit_savedmodel    signature
emit_frozen_graph  text (``.pbtxt``)
=================  ================================================================================

The quantizing three take ``precision``/``calibration``/``keep_float`` alike; ``converted`` (ONNX,
OpenVINO) is a float conversion to start from, so repeated builds (per precision, per kept layer) convert
once. Each returns
``path``, except :func:`~tfopt.emitters.openvino.emit_openvino`, which writes a directory and
returns its ``model.xml``.
"""
