"""OpenVINO IR (``model.xml`` + ``model.bin``) through ``openvino.convert_model`` on the frozen graph.

``none``: FP32 weights; ``fp16``: weights compressed to FP16; ``dynamic``: NNCF weight
compression (INT8 weights, float activations); ``int8``: NNCF post-training quantization with the
same calibration data as the other targets. OpenVINO has no int16-activation mode. Telemetry is
impossible (see ``tfopt._openvino``).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from typing import Any

from tfopt._io import atomic_path
from tfopt._openvino import nncf, openvino
from tfopt.errors import ConversionError, OptionError
from tfopt.graph import Model


def emit_openvino(model: Model, path: str, *, precision: str = "none",
                  calibration: Sequence[dict[str, Any]] | None = None) -> str:
    """Write the IR into directory ``path`` (``model.xml`` + ``model.bin``). Returns the xml path."""
    ov = openvino()
    if precision == "int16x8":
        raise OptionError("openvino has no int16-activation mode; use int8 or fp16")
    # Through a .pb file: OpenVINO's C++ TensorFlow frontend reads function bodies (While/If) that
    # its Python GraphDef iterator cannot ("'_DefinedFunction' object has no attribute 'graph'").
    with tempfile.TemporaryDirectory() as tmp_pb:
        pb = os.path.join(tmp_pb, "frozen.pb")
        with open(pb, "wb") as f:
            f.write(model.graph_def.SerializeToString())
        try:
            ov_model = ov.convert_model(pb)
        except Exception as exc:
            raise ConversionError(f"openvino.convert_model failed: {_first_error(str(exc))}") from exc
    _canonical_names(ov_model)  # before NNCF too: it derives its layer names from these
    if precision == "int8":
        if not calibration:
            raise OptionError("openvino int8 needs calibration data: pass --calibration DATA")
        order = [s.name for s in model.inputs]
        dataset = nncf().Dataset(list(calibration), lambda sample: [sample[n] for n in order])
        ov_model = nncf().quantize(ov_model, dataset, subset_size=len(calibration))
    elif precision == "dynamic":
        ov_model = nncf().compress_weights(ov_model)
    elif precision not in ("none", "fp16"):
        raise OptionError(f"openvino: unknown precision '{precision}'")
    _canonical_names(ov_model)
    with atomic_path(path, directory=True) as tmp:
        os.makedirs(tmp)
        ov.save_model(ov_model, os.path.join(tmp, "model.xml"), compress_to_fp16=precision == "fp16")
    return os.path.join(path, "model.xml")


def _first_error(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    detail = next((line for line in lines if line.startswith("--")), lines[0] if lines else "unknown error")
    return detail[:400]


_AUTO_NAME = re.compile(r"([A-Z][A-Za-z0-9]*)_\d+")


def _canonical_names(ov_model: Any) -> None:
    """Renumber auto-named layers (``Constant_103497``: a process-wide counter) by topological
    position, so identical conversions give identical IR. Tensor names, which runtimes bind to,
    are untouched."""
    for index, op in enumerate(ov_model.get_ordered_ops()):
        auto = _AUTO_NAME.fullmatch(op.get_friendly_name())  # "Transpose_103500", also on a folded Const
        if auto:
            op.set_friendly_name(f"{auto.group(1)}_{index}")
