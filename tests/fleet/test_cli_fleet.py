"""``tfopt fleet``'s command line: a bad manifest and a refused output stop before any work."""

from __future__ import annotations

import yaml

from tfopt.cli import main


def test_an_unknown_manifest_key_names_the_closest(tmp_path, capsys):
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"models": [{"name": "a", "path": "a.keras", "quantise": "int8"}]}))
    assert main(["fleet", str(tmp_path / "m.yaml")]) == 2
    assert "models[0]: unknown option 'quantise'. Did you mean: quantize" in capsys.readouterr().err


def test_an_output_tfopt_did_not_write_is_refused(tmp_path, capsys):
    (tmp_path / "a.keras").write_bytes(b"not read: refused before any load")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"models": [{"name": "a", "path": "a.keras"}]}))
    (tmp_path / "out" / "a").mkdir(parents=True)
    (tmp_path / "out" / "a" / "notes.txt").write_text("the user's")
    assert main(["fleet", str(tmp_path / "m.yaml"), "-o", str(tmp_path / "out")]) == 2
    assert "nothing converted" in capsys.readouterr().err
    assert (tmp_path / "out" / "a" / "notes.txt").read_text() == "the user's"
