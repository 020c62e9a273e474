"""A :class:`tfopt.conversion.stages.Prepared` written to a directory and read back, in two parts
(the fleet caches them under separate keys, :mod:`tfopt.fleet.cache`):

- **graphs** (``save_graphs``): ``portable.pb``, ``runtime.pb`` (``GraphDef``s, serialized
  deterministically) and ``graphs.json`` + ``graphs.npz`` (their signatures, provenance and
  bindings; the freeze and optimize reports; the inputs verified on; the stage times).
- **statistics** (``save_statistics``): ``statistics.json`` + ``statistics.npz`` (the calibration
  samples; tfopt's int8 engine's record) and ``int8/<target>.pb`` (the engine's fake-quant graph
  per target).

Nothing is pickled: the ``.json``/``.npz`` pairs are :mod:`tfopt.conversion.store_format` (JSON, arrays read
with ``allow_pickle=False``, objects only of a closed list of record classes), the graphs are
protobuf. Reading a directory never runs code from it: what is malformed, of another format
version or foreign raises :class:`tfopt.errors.StoreFormatError` (the fleet's cache then treats
the entry as missing and rebuilds it).

What cannot be written is the *original* model's runner (``Model.reference``: a Keras model or a
SavedModel function, what every artifact is verified against): :func:`attach_reference` puts back
the one a fresh load of the same model gives.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from tfopt.conversion import store_format
from tfopt.conversion.stages import Prepared
from tfopt.errors import StoreFormatError
from tfopt.graph import Model

LIVE = ("reference", "variable_values", "keepalive", "baseline")  # Model fields that run code: not written


@dataclass
class StoredInt8:
    """An int8 plan read back: what :class:`tfopt.quantizing.engine.plan.Int8Plan` had decided."""

    models: dict[str, Model] = field(default_factory=dict)
    recorded: dict[str, Any] | None = None
    kept: list[str] = field(default_factory=list)
    ranking: list[dict[str, Any]] = field(default_factory=list)

    def model_for(self, target: str) -> Model:
        return self.models[target]

    def kept_float(self) -> list[str]:
        return list(self.kept)

    def record(self) -> dict[str, Any] | None:
        return self.recorded


def save_graphs(prepared: Prepared, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    state = {"portable": _save_model(prepared.portable, os.path.join(directory, "portable.pb")),
             "runtime": _save_model(prepared.runtime, os.path.join(directory, "runtime.pb")),
             "freeze_report": prepared.freeze_report, "optimize_report": prepared.optimize_report,
             "qat": bool(prepared.qat), "verified_at": prepared.verified_at, "stages": prepared.stages}
    store_format.save(state, directory, "graphs")


def save_statistics(prepared: Prepared, targets: list[str], directory: str) -> None:
    """The samples, and the int8 engine's graph for each of ``targets`` (built now when not yet)."""
    os.makedirs(os.path.join(directory, "int8"), exist_ok=True)
    models = {}
    if prepared.int8 is not None:
        for target in targets:
            models[target] = _save_model(prepared.int8.model_for(target), os.path.join(directory, "int8", f"{target}.pb"))
    state = {"samples": prepared.samples, "int8": models,
             "record": prepared.int8.record() if prepared.int8 is not None else None,
             "kept": prepared.int8.kept_float() if prepared.int8 is not None else [],
             "ranking": list(prepared.int8.ranking) if prepared.int8 is not None else []}
    store_format.save(state, directory, "statistics")


def load_prepared(graphs: str, statistics: str | None) -> Prepared:
    """A Prepared from its two parts (``statistics`` None: no samples, no int8 plan); its models
    have no reference until :func:`attach_reference`.

    Raises:
        StoreFormatError: a file is missing, malformed, of another format version or foreign.
    """
    state = store_format.load(graphs, "graphs")
    try:
        prepared = Prepared(_load_model(state["portable"], os.path.join(graphs, "portable.pb")),
                            _load_model(state["runtime"], os.path.join(graphs, "runtime.pb")),
                            state["freeze_report"], state["optimize_report"], bool(state["qat"]), None,
                            state["verified_at"], stages=dict(state["stages"]))
        if statistics is not None:
            stats = store_format.load(statistics, "statistics")
            prepared.samples = stats["samples"]
            if stats["record"] is not None:
                prepared.int8 = StoredInt8({t: _load_model(meta, os.path.join(statistics, "int8", f"{t}.pb"))
                                            for t, meta in stats["int8"].items()}, stats["record"],
                                           list(stats["kept"]), list(stats["ranking"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # well-formed, but not what save_* writes
        raise StoreFormatError(f"{graphs}: not a stored prepared model ({type(exc).__name__}: {exc}); delete it "
                               "(a cache entry is rebuilt)") from None
    return prepared


def stored_qat(graphs: str) -> bool:
    """Whether the graphs stored in ``graphs`` are quantization-aware (what the statistics key needs)."""
    state = store_format.load(graphs, "graphs")
    if not isinstance(state, dict) or not isinstance(state.get("qat"), bool):
        raise StoreFormatError(f"{graphs}: graphs.json holds no 'qat' flag; delete it (a cache entry is rebuilt)")
    return state["qat"]


def attach_reference(prepared: Prepared, loaded: Model | None) -> None:
    """Give every model of ``prepared`` the original model's runner from ``loaded`` (a fresh load
    of the same source with the same load options); None: a frozen source has none."""
    live = {name: getattr(loaded, name) if loaded is not None else None for name in LIVE}
    prepared.portable = prepared.portable.replace(**live)
    prepared.runtime = prepared.runtime.replace(**live)
    if isinstance(prepared.int8, StoredInt8):
        prepared.int8.models = {t: m.replace(**live) for t, m in prepared.int8.models.items()}


def _save_model(model: Model, path: str) -> dict[str, Any]:
    from tfopt.external.store import store_external

    graph_def, external = store_external(model.graph_def, os.path.dirname(path))  # files linked, never in .npz
    with open(path, "wb") as f:
        f.write(graph_def.SerializeToString(deterministic=True))
    return {"inputs": model.inputs, "outputs": model.outputs, "provenance": model.provenance,
            "bindings": model.bindings, **({"external": external} if external else {})}


def _load_model(meta: dict[str, Any], path: str) -> Model:
    from google.protobuf.message import DecodeError

    from tfopt._tf import graph_def_class

    graph_def = graph_def_class()()
    try:
        with open(path, "rb") as f:
            graph_def.ParseFromString(f.read())
    except (OSError, DecodeError) as exc:
        raise StoreFormatError(f"{path}: not a GraphDef ({type(exc).__name__}: {exc}); delete it "
                               "(a cache entry is rebuilt)") from None
    from tfopt.external.store import load_external

    external = load_external(graph_def, os.path.dirname(path), list(meta.get("external", [])))
    return Model(graph_def, list(meta["inputs"]), list(meta["outputs"]), provenance=dict(meta["provenance"]),
                 bindings=dict(meta["bindings"]), external=external)
