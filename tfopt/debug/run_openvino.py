"""An OpenVINO IR's intermediate tensors, from the CPU plugin with them added as model outputs.

The CPU plugin runs an FP32 IR in bf16 wherever the processor supports it unless told otherwise,
so the model is compiled with ``INFERENCE_PRECISION_HINT`` ``f32`` explicitly and the precision
the plugin reports is noted. The plugin fuses ops into one executed node (Convolution + Add + Relu);
its runtime model names, for each executed node, the ops fused into it (``originalLayersNames``).
An op fused into a later one is *interior*: its output is not added (that would split the fused
node), and the group is compared at its boundary, the last fused op's output. The fused groups
and the final outputs with and without the added outputs are then compared and noted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfopt.debug.intermediates import Intermediates, concat, output_change
from tfopt.graph import Model
from tfopt.runtimes.align import openvino_tensors

CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def open_intermediates(path: str, model: Model) -> Intermediates:
    """The ``openvino`` IR at ``path`` (its ``.xml``) as :class:`Intermediates`."""
    from tfopt._openvino import openvino
    from tfopt.runtimes.openvino import _pair

    ov = openvino()
    core = ov.Core()
    ov_model = core.read_model(path)
    ops = list(ov_model.get_ordered_ops())
    tensors = openvino_tensors(ov_model)
    keys = {(t.key.rsplit(":", 1)[0], int(t.key.rsplit(":", 1)[1])): t.key for t in tensors}
    plain = core.compile_model(ov_model, "CPU", CONFIG)
    inputs = _pair(path, "input", list(plain.inputs), model.inputs)
    outputs = _pair(path, "output", list(plain.outputs), model.outputs)
    anchors = {_key(port, keys): s.node for specs, pairs in ((model.inputs, inputs), (model.outputs, outputs))
               for s in specs for name, port in pairs.items() if name == s.name}
    anchors = {k: v for k, v in anchors.items() if k}
    interior = _interior(plain, [op.get_friendly_name() for op in ops])
    quantized = any(op.get_type_name() == "FakeQuantize" for op in ops)
    # fed by the port paired by name, never by position (an IR converted from a SavedModel orders
    # its inputs as the signature's arguments, not as the model's inputs)
    position = {name: _position_in(plain.inputs, port) for name, port in inputs.items()}

    def run(wanted: Sequence[str], samples: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        by_key = {keys[(op.get_friendly_name(), p)]: op.output(p) for op in ops if op.get_type_name() != "Result"
                  for p in range(op.get_output_size())}
        copy = ov_model.clone()
        copy_ops = {op.get_friendly_name(): op for op in copy.get_ordered_ops()}
        ports = [copy_ops[by_key[k].get_node().get_friendly_name()].output(by_key[k].get_index()) for k in wanted]
        added = copy.add_outputs(ports)
        compiled = core.compile_model(copy, "CPU", CONFIG)
        positions = [_position(compiled, port) for port in added]
        finals = [compiled.outputs[_position(compiled, outputs[n])] for n in outputs]
        runs, normal = [], []
        for x in samples:
            feeds = {i: x[n] for n, i in position.items()}
            values = compiled(feeds)
            runs.append([np.asarray(values[compiled.outputs[i]]) for i in positions] +
                        [np.asarray(values[f]) for f in finals])
            base = plain(feeds)
            normal.append([np.asarray(base[outputs[n]]) for n in outputs])
        change = output_change(concat(normal, list(outputs)), concat([r[len(wanted):] for r in runs], list(outputs)))
        split = sorted(", ".join(sorted(g)) for g in _groups(plain) - _groups(compiled))
        result.notes.append(f"openvino: compiled for CPU with INFERENCE_PRECISION_HINT={_precision(compiled)}; "
                            f"{len(wanted)} outputs added ({len(interior)} ops fused into a later one left out); "
                            + (f"fusions disabled by them: {'; '.join(split)}" if split else "no fusion disabled")
                            + f"; final outputs differ from the unchanged model by max {change:.3g}")
        return concat([r[:len(wanted)] for r in runs], list(wanted))

    result = Intermediates("openvino", path, tensors, anchors, quantized, run, interior=interior,
                           precision=_precision(plain))
    return result


def _key(port: Any, keys: dict[tuple[str, int], str]) -> str:
    """The key of a compiled model's input/output port (a Result's source)."""
    node = port.get_node()
    if node.get_type_name() == "Result":
        source = node.input(0).get_source_output()
        return keys.get((source.get_node().get_friendly_name(), source.get_index()), "")
    return keys.get((node.get_friendly_name(), port.get_index()), "")


def _position(compiled: Any, port: Any) -> int:
    names = set(port.get_names())
    return next(i for i, o in enumerate(compiled.outputs) if names & set(o.get_names()))


def _position_in(ports: Any, port: Any) -> int:
    names = set(port.get_names())
    return next(i for i, p in enumerate(ports) if names & set(p.get_names()))


def _interior(compiled: Any, order: list[str]) -> set[str]:
    """``name:0`` of every op the plugin fused into a later op of the same executed node."""
    position = {name: i for i, name in enumerate(order)}
    out: set[str] = set()
    for node in compiled.get_runtime_model().get_ordered_ops():
        info = node.get_rt_info()
        fused = [n for n in str(info["originalLayersNames"].astype(str)).split(",") if n in position]
        if len(fused) > 1:
            last = max(fused, key=lambda n: position[n])
            out.update(f"{n}:0" for n in fused if n != last)
    return out


def _groups(compiled: Any) -> set[frozenset[str]]:
    """The sets of ops the plugin executes as one node (two or more)."""
    out = set()
    for node in compiled.get_runtime_model().get_ordered_ops():
        fused = [n for n in str(node.get_rt_info()["originalLayersNames"].astype(str)).split(",") if n]
        if len(fused) > 1:
            out.add(frozenset(fused))
    return out


def _precision(compiled: Any) -> str:
    """The inference precision the plugin reports (``f32``)."""
    value = compiled.get_property("INFERENCE_PRECISION_HINT")
    return str(value.to_string()) if hasattr(value, "to_string") else str(value)
