"""Which kernels each artifact really runs: int8 or a float fallback, layer by layer.

A converter given quantization ranges may still leave a layer in float (an op it cannot fuse, a
scale it cannot carry), and nothing fails: the model runs, only slower and differently. This reads
each artifact the way its runtime will execute it and classifies every *compute layer*
(convolution, depthwise convolution, dense/matmul), where the arithmetic and the int8 speed-up are:

==========  =====================================================================================
format      how a layer's precision is read
==========  =====================================================================================
tflite      the flatbuffer's operators: ``CONV_2D``/``DEPTHWISE_CONV_2D``/``FULLY_CONNECTED``/
            ``BATCH_MATMUL``/``TRANSPOSE_CONV``, by the type of their activation input (int8/uint8:
            ``int8``; int16: ``int16``; float with int8 weights: ``dynamic``; else ``float``).
onnx        the graph ONNX Runtime executes: the session's own optimized model (its QDQ fusions,
            at ``ORT_ENABLE_EXTENDED``, where they happen; Loop bodies and If branches too).
            ``QLinearConv``/``QLinearMatMul``/``ConvInteger``/``MatMulInteger``/``QGemm`` are
            ``int8``; ``MatMulIntegerToFloat``/
            ``DynamicQuantizeMatMul`` ``dynamic``; ``Conv``/``MatMul``/``Gemm`` (fused or not)
            ``float``. A DequantizeLinear -> Conv -> QuantizeLinear group that ONNX Runtime did
            not fuse runs as a float Conv, and is counted so.
openvino    the CPU plugin's compiled model (``get_runtime_model()``, at f32 inference precision
            as :mod:`tfopt.runtimes.openvino` runs it; it shows no loop body's kernels, so layers
            inside a ``TensorIterator``/``Loop`` are not listed): ``Convolution``/``Deconvolution``/
            ``FullyConnected``/``MatMul`` nodes by their ``runtimePrecision`` (u8/i8: ``int8``).
==========  =====================================================================================

``int8`` means 8-bit integer kernels (ONNX Runtime and OpenVINO take uint8 activations).

Speed needs more than int8 layers: each layer's activation should run inside its kernel, and
nothing should drop to float between int8 layers. Each reader therefore gives every executed op
(a :class:`tfopt.quantizing.int8_fusion.KernelOp`: its role, whether it computes in float, and for
a layer whether its kernel applies an activation), and :func:`tfopt.quantizing.int8_fusion.analyze`
classifies each layer's activation as ``fused``/``separate``/None and finds the float islands:

==========  =====================================================================================
format      a layer's activation is fused when
==========  =====================================================================================
tflite      its builtin options' ``fused_activation_function`` is not NONE
onnx        it is a ``FusedConv``/``FusedGemm``, or its output zero point is the integer type's
            minimum (ONNX Runtime's ReluQuantFusion/ClipQuantFusion removed the Relu/Clip into
            the requantization, or the quantizer did)
openvino    its ``originalLayersNames`` holds an activation (Relu, Clamp, Swish...) or a
            FakeQuantize whose output low is >= 0 (the same clamp at 0)
==========  =====================================================================================
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from typing import Any

from tfopt.errors import OptionError
from tfopt.quantizing.int8_fusion import KernelOp

TFLITE_LAYERS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV",
                           "CONV_3D"})
ONNX_PRECISION = {
    **dict.fromkeys(("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "NhwcQLinearConv",
                     "QLinearConvTranspose"), "int8"),
    **dict.fromkeys(("MatMulIntegerToFloat", "DynamicQuantizeMatMul"), "dynamic"),
    **dict.fromkeys(("Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm",
                     "NchwcConv"), "float"),
}
OPENVINO_LAYERS = frozenset({"Convolution", "Deconvolution", "FullyConnected", "MatMul"})
OPENVINO_PRECISION = {"u8": "int8", "i8": "int8", "f32": "float", "bf16": "float", "f16": "float", "i16": "int16",
                      "u16": "int16"}

# What follows a layer as a separate kernel (int8_fusion's "activation" role): a unary activation, or
# (the *_ELEMENTWISE ops) an elementwise op reading one computed tensor, its other operands constants.
TFLITE_OPTIONS = {"CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
                  "FULLY_CONNECTED": "FullyConnectedOptions", "TRANSPOSE_CONV": "TransposeConvOptions",
                  "CONV_3D": "Conv3DOptions"}
TFLITE_ACTIVATIONS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "HARD_SWISH",
                                "LOGISTIC", "TANH", "GELU", "ELU"})
TFLITE_ELEMENTWISE = frozenset({"MINIMUM", "MAXIMUM", "MUL", "ADD", "SUB", "DIV", "PRELU"})
ONNX_ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid", "Tanh", "Gelu",
                              "FastGelu", "Elu", "Selu", "Softplus", "QLinearLeakyRelu", "QLinearSigmoid"})
ONNX_ELEMENTWISE = frozenset({"Min", "Max", "Mul", "Add", "Sub", "Div", "PRelu", "QLinearAdd", "QLinearMul"})
ONNX_FLOAT_TYPES = frozenset({1, 10, 11, 16})  # TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
# a quantized layer's output zero point: its input index
ONNX_OUTPUT_ZERO_POINT = {"QLinearConv": 7, "NhwcQLinearConv": 7, "QLinearMatMul": 7, "QLinearConvTranspose": 7,
                          "QGemm": 8}
OPENVINO_ACTIVATIONS = frozenset({"Relu", "Clamp", "PRelu", "Swish", "HSwish", "HSigmoid", "Sigmoid", "Tanh", "Elu",
                                  "Gelu", "Mish", "SoftPlus", "SoftSign", "Minimum", "Maximum"})
OPENVINO_ELEMENTWISE = frozenset({"Eltwise", "Subgraph", "Math"})


def counted(format: str) -> bool:
    """Whether :func:`count_quantized_ops` reads ``format``'s artifacts (its target record names ``int8_ops``)."""
    from tfopt.targets import TABLE

    record = TABLE.get(format)
    return record is not None and record.int8_ops is not None


def count_quantized_ops(format: str, path: str) -> dict[str, Any]:
    """Count an artifact's compute layers by the precision they execute in, and how they fuse.

    Args:
        format: a target whose record names ``int8_ops`` (:mod:`tfopt.targets`; the readers
            below for the built-in ones).
        path: the artifact (an OpenVINO IR's ``.xml``).

    Returns:
        ``{"int8": n, "float": m, ...}`` (every precision seen, zeros for int8 and float
        included); ``"layers"``: ``[{"name", "op", "precision", "activation"}]`` in execution
        order; and from :func:`tfopt.quantizing.int8_fusion.analyze`: ``"fused"`` and
        ``"unfused"`` (layers whose activation runs in their kernel / as a separate op),
        ``"int8_elementwise"``, ``"offsets"``, ``"float_islands"`` and ``"islands"``.

    Raises:
        OptionError: an unknown format, or a path that does not exist.
    """
    from tfopt.quantizing.int8_fusion import analyze
    from tfopt.targets import TABLE, with_role

    if not counted(format):
        readers = ", ".join(t.name for t in with_role("int8_ops"))
        raise OptionError(f"count_quantized_ops: format '{format}' is not one of {readers}")
    if not os.path.exists(path):
        raise OptionError(f"count_quantized_ops: {path} does not exist")
    ops: list[KernelOp] = TABLE[format].call("int8_ops", path)
    layers, fusion = analyze(ops)
    counts: dict[str, Any] = {"int8": 0, "float": 0}
    for layer in layers:
        counts[layer["precision"]] = counts.get(layer["precision"], 0) + 1
    return {**counts, "layers": layers, **fusion}


def tflite_ops(path: str) -> list[KernelOp]:
    """The ops the LiteRT interpreter executes, in order (the tflite record's ``int8_ops``)."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.Model.GetRootAs(f.read(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = schema.TensorType
    integer = {types.INT8: "int8", types.UINT8: "int8", types.INT16: "int16"}
    ops = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        constant = {t for t in range(graph.TensorsLength()) if _tflite_has_data(model, graph.Tensors(t))}
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            tensors = [op.Inputs(j) for j in range(op.InputsLength()) if op.Inputs(j) >= 0]
            data = tuple(f"{g}:{t}" for t in tensors if t not in constant)
            outputs = [op.Outputs(j) for j in range(op.OutputsLength())]
            out = graph.Tensors(outputs[0])
            computes_float = out.Type() in (types.FLOAT32, types.FLOAT16)
            record = KernelOp(out.Name().decode(), name, data, tuple(f"{g}:{t}" for t in outputs),
                              float=computes_float and name != "DEQUANTIZE")
            if name in TFLITE_LAYERS:
                activation, weight = (graph.Tensors(tensors[j]).Type() for j in (0, 1))
                precision = integer.get(activation) or ("dynamic" if weight in (types.INT8, types.INT4) else "float")
                record = replace(record, role="layer", precision=precision, fused=_tflite_fused(schema, op, name))
            elif name == "QUANTIZE":
                record = replace(record, role="quantize", fused=_tflite_clamps_at_zero(out, types))
            elif name == "DEQUANTIZE":
                record = replace(record, role="dequantize")
            elif name in TFLITE_ACTIVATIONS or (name in TFLITE_ELEMENTWISE and len(data) == 1 < len(tensors)):
                record = replace(record, role="activation")
            ops.append(record)
    return ops


def _tflite_has_data(model: Any, tensor: Any) -> bool:
    """A constant: its buffer holds data (in the flatbuffer, or past it in a large model)."""
    buffer = model.Buffers(tensor.Buffer())
    return bool(buffer.DataLength() or buffer.Offset() > 1)


def _tflite_fused(schema: Any, op: Any, name: str) -> bool:
    """The layer's builtin options name an activation (``fused_activation_function`` != NONE)."""
    table = op.BuiltinOptions()
    kind = TFLITE_OPTIONS.get(name)
    if table is None or kind is None:
        return False
    options = getattr(schema, kind)()
    options.Init(table.Bytes, table.Pos)
    return bool(options.FusedActivationFunction())


def _tflite_clamps_at_zero(tensor: Any, types: Any) -> bool:
    """Its zero point is its integer type's minimum (see :func:`_at_minimum`)."""
    q = tensor.Quantization()
    if q is None or q.ZeroPointLength() != 1:
        return False
    return {types.INT8: -128, types.UINT8: 0, types.INT16: -32768}.get(tensor.Type()) == int(q.ZeroPoint(0))


def _at_minimum(zero_point: Any) -> bool:
    """A quantized tensor whose zero point is its integer type's minimum holds no value below 0:
    quantizing into it is a ReLU (what ONNX Runtime's ReluQuantFusion relies on)."""
    import numpy as np

    z = np.asarray(zero_point)
    return z.size > 0 and np.issubdtype(z.dtype, np.integer) and bool(np.all(z == np.iinfo(z.dtype).min))


def onnx_ops(path: str) -> list[KernelOp]:
    """The ops ONNX Runtime executes, in order (the onnx record's ``int8_ops``)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        # QDQ groups become int8 kernels at this level; ENABLE_ALL adds layout changes a saved model cannot hold
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath, load_external_data=False).graph
    scopes = list(_onnx_scopes(graph))  # the graph, then each Loop body / If branch (ONNX Runtime fuses there too)
    constants = {i.name: i for g in scopes for i in g.initializer}
    constants.update({n.output[0]: n.attribute[0].t for g in scopes for n in g.node if n.op_type == "Constant"
                      and n.attribute and n.attribute[0].name == "value"})
    floats = {i.name for g in scopes for i in g.input if i.type.tensor_type.elem_type in ONNX_FLOAT_TYPES}

    def value(name: str) -> Any:
        t = constants.get(name)
        return None if t is None or t.data_location == onnx.TensorProto.EXTERNAL else numpy_helper.to_array(t)

    ops = []
    for n in (n for g in scopes for n in g.node):
        if n.op_type == "Constant":
            continue
        data = tuple(i for i in n.input if i and i not in constants)
        if (n.op_type == "DequantizeLinear" or ONNX_PRECISION.get(n.op_type) in ("float", "dynamic")
                or (n.op_type == "QGemm" and (len(n.input) < 8 or not n.input[7]))):  # no y_scale: float out
            computes_float = True
        elif n.op_type in ONNX_PRECISION or n.op_type.startswith("QLinear") or "Quantize" in n.op_type:
            computes_float = False
        else:
            computes_float = any(i in floats for i in data)
        if computes_float:
            floats.update(n.output)
        record = KernelOp(n.name, n.op_type, data, tuple(n.output), float=computes_float and n.op_type != "DequantizeLinear")
        if n.op_type in ONNX_PRECISION:
            at = ONNX_OUTPUT_ZERO_POINT.get(n.op_type)
            zero_point = value(n.input[at]) if at is not None and len(n.input) > at else None
            fused = (any(a.name == "activation" and a.s for a in n.attribute)
                     or (zero_point is not None and _at_minimum(zero_point)))
            record = replace(record, role="layer", precision=ONNX_PRECISION[n.op_type], fused=fused)
        elif n.op_type == "QuantizeLinear":
            zero_point = value(n.input[2]) if len(n.input) > 2 else None
            record = replace(record, role="quantize", fused=zero_point is not None and _at_minimum(zero_point))
        elif n.op_type == "DequantizeLinear":
            record = replace(record, role="dequantize")
        elif n.op_type in ONNX_ACTIVATIONS or (n.op_type in ONNX_ELEMENTWISE and len(data) == 1):
            record = replace(record, role="activation")
        ops.append(record)
    return ops


def _onnx_scopes(graph: Any) -> Any:
    """``graph`` and, depth first, every subgraph of its nodes (a ``Loop`` body, an ``If`` branch)."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _onnx_scopes(sub)


def openvino_ops(path: str) -> list[KernelOp]:
    """The ops OpenVINO's CPU plugin executes, in order (the openvino record's ``int8_ops``)."""
    from tfopt._openvino import openvino

    core = openvino().Core()
    model = core.read_model(path)
    # what each original op is, before compiling: a compiled layer names the ops it fused
    kinds = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()}
    clamping = {op.get_friendly_name() for op in model.get_ops()
                if op.get_type_name() == "FakeQuantize" and _ov_low_at_least_zero(op)}
    shifting = {op.get_friendly_name() for op in model.get_ops()
                if op.get_type_name() == "FakeQuantize" and _ov_input_low_per_channel(op)}
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    constant: set[str] = set()
    ops = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        name = op.get_friendly_name()
        sources = [v.get_node().get_friendly_name() for v in op.input_values()]
        if kind == "Const" or (sources and all(s in constant for s in sources) and kind != "Input"):
            constant.add(name)
            continue
        data = tuple(f"{v.get_node().get_friendly_name()}:{v.get_index()}" for v in op.input_values()
                     if v.get_node().get_friendly_name() not in constant)
        precision = info["runtimePrecision"].astype(str).lower() if "runtimePrecision" in info else ""
        original = info["originalLayersNames"].astype(str) if "originalLayersNames" in info else name
        fused = original.split(",")
        record = KernelOp(name, kind, data, tuple(f"{name}:{k}" for k in range(op.get_output_size())),
                          float=precision in ("f32", "bf16", "f16") and kind not in ("Input", "Output"))
        if kind in OPENVINO_LAYERS:
            record = replace(record, name=fused[0], role="layer",
                             precision=OPENVINO_PRECISION.get(precision, precision),
                             fused=any(kinds.get(n) in OPENVINO_ACTIVATIONS or n in clamping for n in fused[1:]),
                             offset=_ov_bias_input(op) or any(n in shifting or (kind == "FullyConnected" and kinds.get(n) == "Add")
                                                              for n in fused[1:]))
        elif kind == "FakeQuantize":
            record = replace(record, role="quantize", fused=any(n in clamping for n in fused))
        elif kind in ("Reorder", "Convert"):
            record = replace(record, role="pass")
        elif kind in OPENVINO_ELEMENTWISE and len(data) == 1:
            record = replace(record, role="activation")
        ops.append(record)
    return ops


def _ov_bias_input(layer: Any) -> bool:
    """A compiled layer that reads a float vector on its bias port (input 2, after data and weights).
    Not the ports after it: a ``FullyConnected``'s 3 and 4 are its weights' dequantization scale and
    zero point (a per-tensor scale is a float vector of one element, no bias; a bias the plugin fused
    into a ``FullyConnected`` as a post-op is in its ``originalLayersNames``)."""
    return any(len(v.get_partial_shape()) == 1 and v.get_element_type().is_real() for v in layer.input_values()[2:3])


def _ov_input_low_per_channel(fake_quantize: Any) -> bool:
    """A FakeQuantize of computed values whose input low differs between channels: a bias moved into
    its thresholds (:mod:`tfopt.emitters.openvino_bias_fold`), which the CPU plugin applies as a
    per-channel shift of the layer's requantization."""
    import numpy as np

    source = fake_quantize.input_value(0).get_node()
    low = _ov_constant(fake_quantize.input_value(1).get_node())
    return source.get_type_name() != "Constant" and low is not None and np.unique(low).size > 1


def _ov_constant(node: Any) -> Any:
    """The value of ``node`` seen through ``Convert``s, or None when it is not a constant."""
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    return node.get_data() if node.get_type_name() == "Constant" else None


def _ov_low_at_least_zero(fake_quantize: Any) -> bool:
    """A FakeQuantize whose output low is >= 0 in every channel clamps at 0 (a ReLU in it): every
    value below its input low comes out as that output low. (Its output low, not its input low:
    :mod:`tfopt.emitters.openvino_bias_fold` moves a layer's bias into the input thresholds, so
    ``FakeQuantize(y, -b, 6 - b, 0, 6)`` is the ReLU6 of ``y + b``.)"""
    import numpy as np

    low = _ov_constant(fake_quantize.input_value(3).get_node())
    return low is not None and bool(np.all(low >= 0))
