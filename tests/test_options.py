"""Options as objects: the flat keywords, the CLI's groups and the fleet manifest build the same ones."""

from __future__ import annotations

import json

import pytest

import tfopt
from tfopt.cli import main
from tfopt.errors import OptionError
from tfopt.options import ConvertOptions, FreezeOptions, QuantizeOptions, flat_names, split
from tfopt.verification.tolerances import FREEZE_RTOL, OPTIMIZE_RTOL


def test_keywords_land_on_their_stage():
    o = ConvertOptions.from_kwargs(to=["tflite"], set={"keep_prob": "1"}, opt_rtol=1e-3, rtol=1e-6,
                                   input_format="keras", report_runs=3, cluster=8, overwrite=True)
    assert (o.quantize.to, o.freeze.set, o.optimize.rtol, o.freeze.rtol) == (["tflite"], {"keep_prob": "1"}, 1e-3, 1e-6)
    assert (o.load.input_format, o.report.report_runs, o.compress.cluster, o.overwrite) == ("keras", 3, 8, True)
    assert ConvertOptions().optimize.rtol == OPTIMIZE_RTOL and ConvertOptions().freeze.rtol == FREEZE_RTOL


def test_keywords_change_a_given_object_without_mutating_it():
    base = ConvertOptions(quantize=QuantizeOptions(to=["onnx"], quantize=["fp16"]))
    changed = ConvertOptions.from_kwargs(base, quantize=["int8"])
    assert (changed.quantize.to, changed.quantize.quantize) == (["onnx"], ["int8"])
    assert base.quantize.quantize == ["fp16"]


def test_unknown_and_doubled_keywords_are_named():
    with pytest.raises(OptionError, match=r"unknown option 'calibraton'\. Did you mean: calibration"):
        ConvertOptions.from_kwargs(calibraton="x.npz")
    with pytest.raises(OptionError, match="give 'set' or 'set_values', not both"):
        ConvertOptions.from_kwargs(set={}, set_values={})
    with pytest.raises(OptionError, match="'passes' is not an option here"):
        split({"passes": "none"}, "load", "freeze")
    assert {"to", "quantize", "eval_data", "set", "opt_atol", "input_format"} <= set(flat_names())


def test_convert_takes_the_object_or_the_keywords(digits_model, tmp_path):
    """Same manifest bytes whichever way the options are given."""
    options = ConvertOptions(quantize=QuantizeOptions(to=["pb"]), freeze=FreezeOptions(verify=True))
    options.report.report_runs = 2
    tfopt.convert(digits_model["path"], str(tmp_path / "a"), options)
    tfopt.convert(digits_model["path"], str(tmp_path / "b"), to=["pb"], report_runs=2)
    a, b = ((tmp_path / d / "manifest.json").read_text() for d in "ab")
    assert json.loads(a)["artifacts"] and a == b


def test_cli_groups_build_the_objects(tmp_path):
    from tfopt.cli import build_parser
    from tfopt.cli.convert import options_of

    args = build_parser().parse_args(["convert", "m.keras", "-o", str(tmp_path / "o"), "--to", "tflite,onnx",
                                      "--quantize", "int8", "--calibration", "c.npz", "--set", "k=1",
                                      "--rtol", "1e-3", "--skip", "fold_pad", "--report-runs", "3", "--cluster", "4"])
    o = options_of(args)
    assert (o.quantize.to, o.quantize.quantize, o.quantize.calibration) == (["tflite", "onnx"], ["int8"], "c.npz")
    assert (o.freeze.set, o.freeze.rtol, o.optimize.rtol, o.optimize.skip) == ({"k": "1"}, 1e-3, 1e-3, ["fold_pad"])
    assert (o.report.report_runs, o.compress.cluster) == (3, 4)


def test_cli_convert_refuses_a_negative_tolerance_before_loading(tmp_path, capsys):
    """Exit 2 naming --atol, with no model there to load (where it goes: test_cli_groups_build_the_objects)."""
    assert main(["convert", str(tmp_path / "missing.keras"), "-o", str(tmp_path / "o"), "--atol", "-1"]) == 2
    assert capsys.readouterr().err == "tfopt: error: --atol -1.0: must be a number >= 0\n"
