"""Run an OpenVINO IR on the CPU plugin, with the inference precision stated explicitly.

The CPU plugin runs an FP32 IR in bf16 wherever the processor supports it unless told otherwise
(measured here on a real model: max error 4e-2 by default, 2e-6 with f32; a pose network: 0.083
against 0), so tfopt verifies with ``INFERENCE_PRECISION_HINT`` ``f32`` and records that setting
(:data:`VERIFIED_CONFIG`, :data:`REPRODUCE`) in the manifest, the report and the summary. A hint in
the IR's ``rt_info`` (``runtime_options``) is not honoured by the CPU plugin (OpenVINO 2026.4,
measured), so the setting belongs to whoever compiles the file. A deployer who calls plain
``core.compile_model(xml, "CPU")`` gets the CPU's default precision instead: the report measures
that too (:meth:`OpenVINORunner.at_runtime_default`), and skips the second run where the default
already is f32 (``core.get_property("CPU", "INFERENCE_PRECISION_HINT")``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tfopt._openvino import openvino
from tfopt.graph import Model, TensorSpec
from tfopt.runtimes.base import pair_by_name

VERIFIED_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}  # what tfopt compiles with to verify
REPRODUCE = 'core.compile_model("model.xml", "CPU", {"INFERENCE_PRECISION_HINT": "f32"})'  # the same, for a deployer


class OpenVINORunner:
    """``runner(feeds) -> {output name: array}`` on the CPU plugin at an explicit ``precision``
    (``None``: no hint, the CPU's default, as a plain ``compile_model(xml, "CPU")`` runs it).
    ``compiled_precision`` is what the plugin chose (a hint the CPU cannot run falls back to f32).

    Pairing: OpenVINO's TensorFlow frontend keeps the graph's tensor names (``x:0``, and the node
    name ``x``) as each port's names, and tfopt never renames tensors; a spec whose names no port
    carries raises.
    """

    def __init__(self, path: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *,
                 precision: str | None = "f32", threads: int | None = None):
        ov = openvino()
        config: dict[str, Any] = {} if precision is None else {"INFERENCE_PRECISION_HINT": precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.path, self.threads = path, threads
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.precision = precision
        core = ov.Core()
        model = core.read_model(path)
        self._compiled = core.compile_model(model, "CPU", config)
        self.compiled_precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self._inputs = _pair(path, "input", list(self._compiled.inputs), inputs)
        self._outputs = _pair(path, "output", list(self._compiled.outputs), outputs)

    def at_runtime_default(self, precision: str | None = None) -> tuple[dict[str, Any], OpenVINORunner | None]:
        """What a deployer's plain ``compile_model(xml, "CPU")`` runs: ``(record, runner)``, the
        runner ``None`` when the CPU's default precision is this runner's (the numbers are the
        verified ones: no second run). ``precision`` forces the hint of that run instead (``"bf16"``
        shows on any CPU how a bf16 default is reported; a CPU without bf16 runs it in f32)."""
        default = cpu_default_precision()
        record = {"cpu_default_precision": default, "verified_with": {"INFERENCE_PRECISION_HINT": self.precision},
                  "reproduce": REPRODUCE, "hint": precision}
        if precision is None and default == self.compiled_precision:
            return {**record, "compiled_precision": default, "measured": False,
                    "why": f"the CPU's default precision is {default}, the verified one: the same numbers"}, None
        try:
            runner = OpenVINORunner(self.path, self.inputs, self.outputs, precision=precision, threads=self.threads)
        except RuntimeError as exc:  # the plugin's own default, which it cannot run here
            return self.default_failed(record, exc), None
        return {**record, "compiled_precision": runner.compiled_precision, "measured": True}, runner

    @staticmethod
    def default_failed(record: dict[str, Any], exc: BaseException) -> dict[str, Any]:
        """``record`` (of :meth:`at_runtime_default`) for a runtime-default run the CPU plugin refused, with why:
        the artifact is verified (the f32 call works), but a deployer's plain ``compile_model(xml, "CPU")`` does not
        run it on this machine. Seen with oneDNN's instruction set capped (``ONEDNN_MAX_CPU_ISA=AVX2``) on a CPU
        with bf16: the plugin still defaults to bf16 from the CPU's own flags, and capped oneDNN has no bf16
        kernel."""
        first = " ".join(str(exc).split())
        first = (first[first.find("[CPU]"):] if "[CPU]" in first else first[-300:])[:300]
        return {**record, "compiled_precision": None, "measured": False, "fidelity": None, "fails": first,
                "why": f"a plain compile_model(xml, \"CPU\") fails on this machine at its default precision "
                       f"({record['cpu_default_precision']}): {first}; use the verified call"}

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        result = self._compiled({port: np.asarray(feeds[name]) for name, port in self._inputs.items()})
        return {name: np.asarray(result[port]) for name, port in self._outputs.items()}

    def close(self) -> None:
        """OpenVINO frees the compiled model with its last reference."""
        self._compiled = None


def cpu_default_precision() -> str:
    """The CPU plugin's default inference precision here (``f32``; ``bf16`` on CPUs with bf16)."""
    return str(openvino().Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name())


def runtime_settings() -> dict[str, Any]:
    """What the manifest records about running the ``openvino`` target (:mod:`tfopt.targets`):
    the setting the artifacts were verified with, the call that reproduces it, and this CPU's
    default precision and capabilities (another CPU may default to bf16)."""
    capabilities = openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return {"device": "CPU", "verified_with": dict(VERIFIED_CONFIG), "reproduce": REPRODUCE,
            "cpu_default_precision": cpu_default_precision(), "cpu_capabilities": sorted(map(str, capabilities))}


def _pair(path: str, kind: str, ports: list[Any], specs: Sequence[TensorSpec]) -> dict[str, Any]:
    return pair_by_name(kind, path, specs, ports, lambda port: set(port.get_names()),
                        lambda spec: {spec.tensor, spec.name, spec.node})


def open_runner(path: str, model: Model, threads: int | None = None) -> OpenVINORunner:
    """The ``openvino`` target's runner (:mod:`tfopt.targets`): explicit f32 inference precision."""
    return OpenVINORunner(path, model.inputs, model.outputs, precision=VERIFIED_CONFIG["INFERENCE_PRECISION_HINT"],
                          threads=threads)


def read_weights(path: str) -> Iterator[tuple[str, np.ndarray]]:
    """Every constant tensor of the artifact: ``(name, values)`` (see :mod:`tfopt.report.weights`)."""
    xml = os.path.join(path, "model.xml") if os.path.isdir(path) else path
    for op in openvino().Core().read_model(xml).get_ordered_ops():
        if op.get_type_name() == "Constant":
            yield op.get_friendly_name(), np.asarray(op.get_data())


def has_loop(path: str) -> bool:
    """The IR holds a ``Loop`` (a ``TensorIterator`` runs over a sequence: it ends): the CPU plugin may never
    leave it (the ``openvino`` target's ``loops`` role, :mod:`tfopt.targets`). Found in the IR's XML text."""
    import mmap

    xml = os.path.join(path, "model.xml") if os.path.isdir(path) else path
    with open(xml, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(b'type="Loop"') >= 0
