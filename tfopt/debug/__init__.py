"""``tfopt debug``: where an artifact first departs from TensorFlow, layer by layer.

- :mod:`tfopt.runtimes.align`: every artifact tensor mapped back to the TF node it computes (TFLite's
  fused ``a;b;c`` names, tf2onnx names, OpenVINO tensor names and, where OpenVINO dropped them, the
  graph's structure), in TensorFlow's topological order. It lives in ``runtimes/`` because the
  per-layer quantization ranking (:mod:`tfopt.quantizing.native.layer_targets`) uses the same
  mapping: production code never imports ``debug/`` (``tests/test_package_rules.py``).
- ``run_tensorflow``, ``run_tflite``, ``run_onnx``, ``run_openvino``: each runtime run once with
  its intermediate tensors kept, saying when keeping them changed what runs.
- :mod:`tfopt.debug.compare`: per-layer errors, the first layer where the error jumps, the
  conversion/quantization split; :mod:`tfopt.debug.report` writes ``compare.json`` and the HTML page.
- :mod:`tfopt.debug.reduce` (with :mod:`.subgraph`, :mod:`.check`, :mod:`.repro`): the smallest subgraph
  that still fails to convert or mismatches, its cut points fed with TensorFlow's real values, and a
  ``repro.py`` for the converter's maintainers.
"""
