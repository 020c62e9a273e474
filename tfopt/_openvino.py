"""The single place tfopt imports OpenVINO: with telemetry made impossible, on first use only.

OpenVINO's converter (ovc) and NNCF both fall back to a no-op stub when ``openvino_telemetry``
cannot be imported. tfopt makes it unimportable *in its own process* (a ``None`` entry in
``sys.modules``) before OpenVINO is first imported, so no telemetry thread ever starts and nothing
is sent; the user's installation and settings are untouched.
"""

from __future__ import annotations

import sys
from typing import Any


def openvino() -> Any:
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    import openvino as ov

    return ov


def nncf() -> Any:
    import logging

    openvino()
    import nncf as _nncf

    _nncf.set_log_level(logging.ERROR)  # its tables and progress bars would drown tfopt's output
    return _nncf
