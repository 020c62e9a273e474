"""Float tensors that the graph casts to integers, kept at full precision in the IR.

OpenVINO's CPU plugin runs an fp32 IR in bf16 on CPUs with bf16 (and a device may run it in f16)
unless the caller passes ``INFERENCE_PRECISION_HINT=f32``. It lowers the input of every float op but
the graph's tail, ``Convert`` included: a float model input that carries token ids (Keras's default
``Input`` into an ``Embedding``), class ids (``one_hot``) or indices (``gather``) is rounded to 8
significant bits before its cast, so id 11652 becomes 11648 and the lookup takes another row. The IR
attribute ``precise`` (OpenVINO's ``DisableFP16Compression``, which the CPU plugin reads as "keep
this node's original precision") is written on every float-to-integer ``Convert`` and on the float
ops between it and where the float comes from, up to a ``Parameter`` or ``Const``. The walk stops at
the ops the plugin itself runs in low precision for speed (convolutions, matrix products,
recurrent sequences, loops), as the plugin keeps the graph's tail after them in f32: an integer
computed from such an op is not an id the user fed. OpenVINO's Python API cannot set the attribute
(it is a typed runtime attribute), so the saved ``model.xml`` is edited; the reader restores it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

FLOAT = {"FP64", "FP32", "FP16", "BF16"}
INTEGER = {"i4", "i8", "i16", "i32", "i64", "u1", "u4", "u8", "u16", "u32", "u64"}
# the walk's ends: where the float comes from, and the ops the CPU plugin lowers on purpose
STOP = {"Parameter", "Const", "Convolution", "GroupConvolution", "ConvolutionBackpropData",
        "GroupConvolutionBackpropData", "MatMul", "LSTMSequence", "GRUSequence", "RNNSequence", "LSTMCell",
        "GRUCell", "RNNCell", "Loop", "TensorIterator", "If", "Interpolate", "ROIPooling"}


def keep_integer_casts_precise(xml_path: str) -> int:
    """Mark the float-to-integer casts of the IR at ``xml_path`` (and of its loop and branch bodies),
    with the float ops feeding them, ``precise``; rewrite the file if any. Returns how many ops."""
    tree = ET.parse(xml_path)
    marked = sum(_mark_graph(graph) for graph in tree.iter() if graph.find("layers") is not None
                 and graph.find("edges") is not None)
    if marked:
        ET.indent(tree, space="\t")
        tree.write(xml_path, encoding="utf-8", xml_declaration=True)
    return marked


def _mark_graph(graph: ET.Element) -> int:
    layers = {layer.get("id"): layer for layer in graph.findall("layers/layer")}
    producer = {(e.get("to-layer"), e.get("to-port")): (e.get("from-layer"), e.get("from-port"))
                for e in graph.findall("edges/edge")}
    todo = [layer for layer in layers.values() if _float_to_integer(layer)]
    seen: set[str | None] = set()
    while todo:
        layer = todo.pop()
        if layer.get("id") in seen:
            continue
        seen.add(layer.get("id"))
        _set_precise(layer)
        for port in layer.findall("input/port"):
            source = producer.get((layer.get("id"), port.get("id")))
            if source is None:
                continue
            above = layers.get(source[0])
            if above is not None and above.get("type") not in STOP and _port(above, source[1]) in FLOAT:
                todo.append(above)
    return len(seen)


def _float_to_integer(layer: ET.Element) -> bool:
    data = layer.find("data")
    port = layer.find("input/port")
    return (layer.get("type") == "Convert" and data is not None and data.get("destination_type") in INTEGER
            and port is not None and port.get("precision") in FLOAT)


def _port(layer: ET.Element, port_id: str | None) -> str:
    for port in layer.findall("output/port"):
        if port.get("id") == port_id:
            return port.get("precision", "")
    return ""


def _set_precise(layer: ET.Element) -> None:
    info = layer.find("rt_info")
    if info is None:
        info = ET.Element("rt_info")
        layer.insert(0, info)
    if not any(a.get("name") == "precise" for a in info.findall("attribute")):
        ET.SubElement(info, "attribute", {"name": "precise", "version": "0"})
