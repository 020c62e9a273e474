"""The original model's outputs, recorded once per model by the fleet's ``prepare`` task, as a cache
entry of its own (stage ``recording``), so that the ``emit`` and ``finish`` tasks of a model with
tensors outside its graph never load the original (one copy of its weights per running task).

What is recorded is what a single ``tfopt convert`` records before it releases such a model
(:mod:`tfopt.conversion.release`): the original's outputs on every verification input set
(``Prepared.verified_at.sets()``, in that order) and the report's part
(:class:`tfopt.report.measure.RecordedReference`: the inputs measured on, the original's outputs on
them, its latency). Written as ``recording.json`` + ``recording.npz``
(:mod:`tfopt.conversion.store_format`: nothing pickled). An artifact is verified against the
recorded outputs exactly as ``convert()`` verifies it against the outputs it recorded.

Key: the ``statistics`` key (the graphs, the inputs verified on, the calibration samples the report
measures on, the eval data) and the report options the recording reads: ``seed``,
``report_runs``, ``allow_nonfinite``.
"""

from __future__ import annotations

from typing import Any

from tfopt.fleet.keys import digest_of

STAGE = "recording"


def recording_key(statistics: str, o: Any) -> str:
    r = o.report
    return digest_of({"stage": STAGE, "statistics": statistics, "seed": r.seed, "runs": r.report_runs,
                      "allow_nonfinite": r.allow_nonfinite})


def store_recording(cache: Any, key: str, p: Any, prepared: Any) -> bool:
    """Record the original of ``prepared`` (attached: :func:`tfopt.conversion.store.attach_reference`),
    release it, and store the recording under ``key``. False when it is not released
    (:func:`tfopt.conversion.release.releasable`): nothing stored."""
    from tfopt.conversion import store_format
    from tfopt.conversion.release import record_and_release

    if not record_and_release(p, prepared):
        return False
    sets = prepared.verified_at.sets() if prepared.verified_at is not None else []
    state = {"sets": prepared.reference_outputs.on(sets), "report": prepared.report_reference}
    with cache.put(STAGE, key) as tmp:
        store_format.save(state, tmp, STAGE)
    return True


def read_recording(cache: Any, key: str, prepared: Any) -> bool:
    """Put the stored recording on ``prepared`` (``reference_outputs``, ``report_reference``);
    False when the cache has none.

    Raises:
        StoreFormatError: the entry is not a recording of this model (another format, or another
            number of verification input sets).
    """
    from tfopt.conversion import store_format
    from tfopt.conversion.parts import ReferenceOutputs
    from tfopt.errors import StoreFormatError
    from tfopt.report.measure import RecordedReference

    entry = cache.get(STAGE, key)
    if entry is None:
        return False
    state = store_format.load(entry, STAGE)
    sets = prepared.verified_at.sets() if prepared.verified_at is not None else []
    if not isinstance(state, dict) or not isinstance(state.get("report"), RecordedReference) \
            or not isinstance(state.get("sets"), list) or len(state["sets"]) != len(sets) \
            or not all(isinstance(o, dict) for o in state["sets"]):
        raise StoreFormatError(f"{entry}: not a recording of this model's original; delete it (it is rebuilt)")
    prepared.reference_outputs = ReferenceOutputs.recorded(prepared.portable, sets, state["sets"])
    prepared.report_reference = state["report"]
    return True
