"""The fleet's three task functions, run in a worker process (:mod:`tfopt.fleet.worker` locally, a
Ray worker under Ray). Each takes a JSON-able spec (:mod:`tfopt.fleet.plan`) and returns a JSON-able
outcome; everything between tasks goes through the cache (:mod:`tfopt.fleet.cache`):

- ``prepare``: load -> freeze -> optimize (cache stage ``optimize``), the calibration samples and
  the int8 engine's fake-quant graph per target (stage ``statistics``).
- ``emit``: one target x precision: emitted, counted and verified (stage ``emit``: the artifact's
  files and its record).
- ``finish``: the model's output directory, written atomically: every artifact copied out of the
  cache, ``manifest.json``, ``layers.json``, the report, the gates, the resume stamp.

They call the stages of ``tfopt convert`` (:mod:`tfopt.conversion.stages`) with the same arguments
``convert()`` gives them, so the artifacts are byte-identical to ``tfopt convert``'s. A task that
finds an entry it needs missing or corrupt (removed by the cache's hash check) rebuilds it; so does
one whose entry passes the hash check but cannot be read as tfopt's format
(:class:`tfopt.errors.StoreFormatError`: written by something else, e.g. a pickle): it is removed,
counted in ``Cache.corrupt``, and rebuilt. Nothing read from the cache is unpickled or executed.

A failed emit (the target requested, its converter or verification failed) is stored apart, in
stage ``emit-failed``: the same run's ``finish`` reads it (the failure is reported once, not
converted twice), and the next run's emit task never does, so a failure is re-tried every run and
never served from the cache as an artifact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from typing import Any

STAMP = ".fleet-stamp.json"
FAILED_STAGE = "emit-failed"  # emit records with a failure: read by this run's finish only


def run_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one task in this process (its working directory: the manifest's). Exceptions propagate."""
    os.chdir(spec["base"])
    kind = spec["kind"]
    start = time.perf_counter()
    outcome = {"prepare": prepare_task, "emit": emit_task, "finish": finish_task}[kind](spec)
    outcome["seconds"] = time.perf_counter() - start
    return outcome


def say(event: Any) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {event}", flush=True)


class _Context:
    """What every task of one model builds first: the plan, the cache, the keys."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from tfopt.conversion.stages import plan
        from tfopt.fleet.cache import Cache
        from tfopt.fleet.keys import optimize_key

        self.spec = spec
        self.path = spec["path"]
        self.plan = plan(self.path, spec["outdir"], **spec["kwargs"], overwrite=spec["overwrite"])
        self.cache = Cache(spec["cache"])
        self.optimize_key = optimize_key(self.path, spec["base"], self.plan.options)
        self.hits: list[str] = []
        self._prepared: Any = None
        self._referenced = False

    def statistics_key(self, qat: bool) -> str:
        from tfopt.conversion.stages import engine_targets
        from tfopt.fleet.keys import statistics_key

        return statistics_key(self.optimize_key, self.plan.options, engine_targets(self.plan, qat))

    def prepared(self, *, reference: bool = True) -> Any:
        """The model's Prepared, from the cache (rebuilt when missing), with the original model's
        runner attached (``reference``: needed to verify and measure)."""
        if self._prepared is None:
            self._prepared = self._load()
        if reference:
            self.reference(self._prepared)
        return self._prepared

    def _load(self) -> Any:
        from tfopt._user_code import PROVENANCE_KEY, import_recorded
        from tfopt.conversion.stages import check_calibration
        from tfopt.conversion.store import load_prepared, stored_qat

        graphs = self.cache.get("optimize", self.optimize_key)
        statistics = None
        if graphs is not None:
            qat = self.readable("optimize", self.optimize_key, lambda: stored_qat(graphs))
            graphs = None if qat is None else graphs
            statistics = None if qat is None else self.cache.get("statistics", self.statistics_key(qat))
        if graphs is None or statistics is None:
            return self.build()
        prepared = self.readable("statistics", self.statistics_key(qat), lambda: load_prepared(graphs, statistics))
        if prepared is None:
            return self.build()
        self.hits += ["optimize", "statistics"]
        check_calibration(self.plan, prepared.qat)
        # the cached graphs were loaded by another task: what --custom-objects registers (its ops) exists here too
        import_recorded(prepared.portable.provenance.get(PROVENANCE_KEY, []))
        return prepared

    def readable(self, stage: str, key: str, read: Any) -> Any:
        """``read()``, or None when the entry (hash-checked, so written whole) is not tfopt's format:
        it is removed and counted as corrupt, so it is rebuilt like a damaged one."""
        from tfopt.errors import StoreFormatError

        try:
            return read()
        except StoreFormatError as exc:
            say(f"cache entry {stage}/{key[:12]} unreadable, rebuilding it: {exc}")
            self.cache.corrupt.append(f"{stage}/{key}")
            self.cache.remove(stage, key)
            return None

    def reference(self, prepared: Any) -> None:
        """What artifacts are verified and measured against: for a model with external tensors
        (:func:`tfopt.conversion.release.releasable`), the original's outputs recorded once by the
        prepare task (:mod:`tfopt.fleet.recording`; recorded now, loading the original, when the
        cache lacks them); else the original model, loaded."""
        from tfopt.conversion.parts import accuracy_control
        from tfopt.conversion.release import releasable
        from tfopt.conversion.stages import inputs_of
        from tfopt.fleet.recording import STAGE, read_recording, recording_key, store_recording

        if self._referenced:
            return
        self._referenced = True
        key = recording_key(self.statistics_key(prepared.qat), self.plan.options) \
            if releasable(self.plan, prepared) else None
        if key is not None and self.readable(STAGE, key, lambda: read_recording(self.cache, key, prepared)):
            self.hits.append(STAGE)
        else:
            self.attach(prepared)
            if key is not None:
                store_recording(self.cache, key, self.plan, prepared)
        q = self.plan.options.quantize
        if q.accuracy_control is not None and prepared.control is None:
            prepared.control = accuracy_control(q.accuracy_control,
                                                inputs_of(self.plan, prepared).eval(prepared.portable.inputs))

    def attach(self, prepared: Any) -> None:
        """The original model, loaded, as ``prepared``'s reference (unless it has one)."""
        from tfopt.conversion.pipeline import load_kwargs
        from tfopt.conversion.store import attach_reference
        from tfopt.loaders import load

        if prepared.portable.reference is None:
            attach_reference(prepared, load(self.path, **load_kwargs(self.plan.load)))

    def build(self) -> Any:
        """Prepare what the cache lacks (the graphs, or just the statistics) and store it."""
        from tfopt.conversion.stages import check_calibration, engine_targets, prepare_graphs, prepare_statistics
        from tfopt.conversion.store import load_prepared, save_graphs, save_statistics

        graphs = self.cache.get("optimize", self.optimize_key)
        prepared = None if graphs is None else self.readable("optimize", self.optimize_key,
                                                             lambda: load_prepared(graphs, None))
        if prepared is not None:
            self.hits.append("optimize")
            check_calibration(self.plan, prepared.qat)
            self.attach(prepared)  # the int8 engine's search and verification run the original
        else:
            say("loading, freezing and optimizing")
            prepared = prepare_graphs(self.path, self.plan)
            with self.cache.put("optimize", self.optimize_key) as tmp:
                save_graphs(prepared, tmp)
        say("calibration statistics")
        prepare_statistics(self.plan, prepared, say)
        with self.cache.put("statistics", self.statistics_key(prepared.qat)) as tmp:
            save_statistics(prepared, engine_targets(self.plan, prepared.qat), tmp)
        return prepared


def prepare_task(spec: dict[str, Any]) -> dict[str, Any]:
    from tfopt.conversion.release import releasable
    from tfopt.fleet.serving import provide_serving

    ctx = _Context(spec)
    prepared = ctx.prepared(reference=False)
    provide_serving(ctx.cache, ctx.optimize_key, ctx.plan.pairs, prepared.portable)  # once, for every emit task
    if releasable(ctx.plan, prepared):
        ctx.reference(prepared)  # the original's outputs, recorded once: no emit or finish task loads it
    return {"cache_hits": sorted(set(ctx.hits)), "statistics_key": ctx.statistics_key(prepared.qat)}


def emit_task(spec: dict[str, Any]) -> dict[str, Any]:
    ctx = _Context(spec)
    entry = _emit(ctx, spec["target"], spec["precision"], failed_ok=False)
    return {"cache_hits": sorted(set(ctx.hits)), "record": _record(entry)}


def _emit(ctx: _Context, target: str, precision: str, *, failed_ok: bool) -> str:
    """The emit entry of ``target`` x ``precision`` (built now when the cache lacks it).
    ``failed_ok``: a stored failure counts (``finish``: the failure this run's emit task recorded);
    else a stored failure is re-tried."""
    from tfopt.conversion.parts import ConvertResult
    from tfopt.conversion.stages import emit_artifact
    from tfopt.fleet.keys import emit_key

    prepared = ctx.prepared(reference=False)
    key = emit_key(ctx.statistics_key(prepared.qat), ctx.plan.options, target, precision)
    entry = _readable_record(ctx, "emit", key)
    if entry is not None:
        ctx.hits.append("emit")
        return entry
    entry = _readable_record(ctx, FAILED_STAGE, key) if failed_ok else None
    if entry is not None:
        return entry  # not a hit: this run's emit task made it
    from tfopt.fleet.serving import provide_serving

    ctx.reference(prepared)
    provide_serving(ctx.cache, ctx.optimize_key, [(target, precision)], prepared.portable)  # prepare's entry
    result = ConvertResult(outdir=ctx.spec["outdir"])
    say(f"{target} {precision}")
    os.makedirs(ctx.cache.root, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".emit-", dir=ctx.cache.root) as scratch:  # same filesystem: renamed
        files = os.path.join(scratch, "files")
        os.makedirs(files)
        emit_artifact(ctx.plan, prepared, result, files, target, precision, say, last=False)
        record = {"artifacts": [dataclasses.asdict(a) for a in result.artifacts],
                  "skipped": [list(s) for s in result.skipped], "layer_errors": result.layer_errors,
                  "failed": [dataclasses.asdict(f) for f in result.failed],
                  "keep_float": result.keep_float, "engine_fallbacks": result.engine_fallbacks,
                  "seconds": prepared.stages.get(f"{target} {precision}", 0.0)}
        from tfopt.verification.nonfinite import to_json

        stage = FAILED_STAGE if result.failed else "emit"  # a failure is never an "emit" entry: re-tried next run
        with ctx.cache.put(stage, key) as tmp:
            os.rename(files, os.path.join(tmp, "files"))
            with open(os.path.join(tmp, "emit.json"), "w") as f:
                json.dump(to_json(record), f, sort_keys=True, allow_nan=False)
    if stage == "emit":
        ctx.cache.remove(FAILED_STAGE, key)  # an earlier run's failure, now built
    entry = ctx.cache.get(stage, key)
    if entry is None:
        raise RuntimeError(f"the cache at {ctx.cache.root} lost the entry just written ({stage}/{key})")
    return entry


def _readable_record(ctx: _Context, stage: str, key: str) -> str | None:
    """The entry when it holds a readable record (an ``emit`` entry: one without failures)."""
    entry = ctx.cache.get(stage, key)
    if entry is None:
        return None
    try:
        record = _record(entry)
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict) or (stage == "emit" and record.get("failed")):
        ctx.cache.corrupt.append(f"{stage}/{key}")
        ctx.cache.remove(stage, key)
        return None
    return entry


def _record(entry: str) -> dict[str, Any]:
    with open(os.path.join(entry, "emit.json")) as f:
        record: dict[str, Any] = json.load(f)
    return record


def finish_task(spec: dict[str, Any]) -> dict[str, Any]:
    """The model's OUTROOT/NAME, atomically: artifacts, manifest, report, gates, resume stamp."""
    from tfopt._io import atomic_path
    from tfopt.conversion.parts import Artifact, ConvertResult, Failure
    from tfopt.conversion.stages import finish
    from tfopt.errors import ConversionError, GateFailure
    from tfopt.report.build import finish_gates

    ctx = _Context(spec)
    p = ctx.plan
    entries = [(target, precision, _emit(ctx, target, precision, failed_ok=True)) for target, precision in p.pairs]
    prepared = ctx.prepared(reference=True)
    result = ConvertResult(outdir=spec["outdir"], skipped=list(p.skipped), freeze_report=prepared.freeze_report,
                           optimize_report=prepared.optimize_report, verified_at=prepared.verified_at)
    with atomic_path(spec["outdir"], directory=True) as tmp:
        os.makedirs(tmp)
        for target, precision, entry in entries:  # in the plan's order, as convert() records them
            record = _record(entry)
            shutil.copytree(os.path.join(entry, "files"), tmp, dirs_exist_ok=True)
            result.artifacts += [Artifact(**a) for a in record["artifacts"]]
            result.skipped += [tuple(s) for s in record["skipped"]]
            result.failed += [Failure(**f) for f in record.get("failed", [])]
            result.layer_errors.update(record["layer_errors"])
            result.keep_float.update(record["keep_float"])
            result.engine_fallbacks.update(record["engine_fallbacks"])
            if record["artifacts"]:
                prepared.stages[f"{target} {precision}"] = record["seconds"]
        if not result.artifacts:
            reasons = "; ".join([f"{t} {p_}: {why}" for t, p_, why in result.skipped]
                                + [f"{f.format} {f.precision}: {f.reason}" for f in result.failed])
            raise ConversionError(f"no target could be built: {reasons}")
        finish(p, prepared, result, tmp, say)
        with open(os.path.join(tmp, STAMP), "w") as f:
            json.dump({"fingerprint": spec["stamp"], "latency": spec.get("latency")}, f)
    status, error = "converted", None
    try:
        finish_gates(result.report, p.options.report.junit)
    except GateFailure as exc:
        status, error = "gate-failed", str(exc)
    if result.failed:  # as `tfopt convert`: a missing artifact outranks a tripped gate
        status = "partial"
        error = "; ".join(f"{f.format} {f.precision}: {f.reason.splitlines()[0]}" for f in result.failed)
    return {"cache_hits": sorted(set(ctx.hits)), "model_status": status, "error": error}
