"""Loading options that name user things: --custom-objects modules, --tags."""

from __future__ import annotations

import pytest

from tfopt.cli import main
from tfopt.loaders.keras import import_custom_objects


def test_custom_objects_module_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "my_layers_xyz.py").write_text("def swish2(x):\n    return x\n\nCUSTOM_OBJECTS = {'swish2': swish2}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))])
    assert list(import_custom_objects("my_layers_xyz")) == ["swish2"]


@pytest.fixture(scope="module")
def tiny_savedmodel(tmp_path_factory):
    from tests.helpers import saved_function
    from tfopt._tf import tf

    t = tf()
    return saved_function(tmp_path_factory.mktemp("sm") / "tiny", lambda x: {"y": x * 2.0},
                          [t.TensorSpec([None, 3], t.float32, name="x")])


def test_wrong_tags_is_a_bad_option_listing_the_tag_sets(tiny_savedmodel, capsys):
    assert main(["inspect", tiny_savedmodel, "--tags", "train"]) == 2
    err = capsys.readouterr().err
    assert "no MetaGraph with tags 'train'" in err and "available tag sets: serve" in err
    assert main(["inspect", tiny_savedmodel, "--tags", "serve"]) == 0
