#!/usr/bin/env bash
# tfopt as a CI step: convert the model the training job produced, gate the result, publish JUnit.
#
#   scripts/ci_example.sh MODEL CALIBRATION.npz EVAL.npz OUTDIR
#
# Exit status is tfopt's: 0 = every artifact written, verified and within its gates;
# 10 = a gate failed (artifacts and reports are still written: upload them for the post-mortem);
# 2-9 = bad input or a conversion/verification error, with a one-line message on stderr.
# In GitHub Actions, run this as a step, then upload OUTDIR and point a JUnit reporter
# (e.g. mikepenz/action-junit-report) at OUTDIR.gates.xml with `if: always()`.
set -euo pipefail

MODEL=${1:?usage: ci_example.sh MODEL CALIBRATION.npz EVAL.npz OUTDIR}
CALIBRATION=${2:?calibration data (.npz keyed by input name)}
EVAL=${3:?held-out inputs and labels (.npz)}
OUTDIR=${4:?output directory}
TFOPT=${TFOPT:-tfopt}   # e.g. TFOPT="python -m tfopt"
export TF_CPP_MIN_LOG_LEVEL=3

# 1. What are we deploying? (fails fast, exit 3/4, on a missing or unreadable model)
$TFOPT inspect "$MODEL"

# 2. Convert to every target, int8 calibrated; verify each artifact against the original; gate it.
#    The JUnit file lives outside OUTDIR: tfopt replaces OUTDIR as a whole.
status=0
$TFOPT convert "$MODEL" -o "$OUTDIR" \
    --to tflite,onnx,openvino --quantize none,int8 \
    --calibration "$CALIBRATION" --eval-data "$EVAL" \
    --fail-if "fp32:max_abs_err>1e-4" \
    --fail-if "int8:accuracy_drop>2.0" \
    --fail-if "tflite/int8:bytes>200000" \
    --junit "$OUTDIR.gates.xml" || status=$?

if [ "$status" -eq 10 ]; then
    echo "::error::tfopt gates failed; see $OUTDIR/report.md and $OUTDIR.gates.xml" >&2
elif [ "$status" -ne 0 ]; then
    echo "::error::tfopt convert failed (exit $status)" >&2
fi
exit "$status"
