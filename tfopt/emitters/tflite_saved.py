"""The TFLite converter's input, prepared once per model for all its precisions.

``TFLiteConverter.from_concrete_functions(...).convert()`` first writes the function as a
temporary SavedModel, loads it back (``tf.saved_model.load``), and converts from that directory;
only the conversion itself depends on the precision's flags. Converting the same frozen model to
fp32 and then fp16 therefore re-traced the function and re-wrote and re-loaded the same SavedModel
(~0.9 CPU s of ~1.7 per conversion on MobileNetV2). :func:`converter_for` keeps the concrete
function and that SavedModel of the last model converted, and hands them to the next converter of
the *same* model object: the converter's own code path, the same directory contents, so the same
flatbuffer bytes (tested). A different model replaces them; the directory is removed then or at exit.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from tfopt._tf import tf
from tfopt.graph import Model
from tfopt.runtimes.tensorflow import concrete_function


@dataclass
class _Prepared:
    model: Model  # kept, so its id is not reused while it is cached
    function: Any
    holder: Any
    directory: str | None = None
    saved: Any = None  # what the converter's _convert_concrete_functions_to_saved_model returned
    state: tuple[Any, ...] = ()  # the converter attributes that call set


_last: list[_Prepared] = []


def _forget() -> None:
    for prepared in _last:
        if prepared.directory:
            shutil.rmtree(prepared.directory, ignore_errors=True)
    _last.clear()


atexit.register(_forget)


def converter_for(model: Model) -> Any:
    """``tf.lite.TFLiteConverter.from_concrete_functions`` for ``model`` whose SavedModel step is
    done once per model object (see the module doc)."""
    t = tf()
    if not _last or _last[0].model is not model:
        _forget()
        function = concrete_function(model)
        holder = t.Module()  # the converter wants the function's owner (its deprecated path otherwise)
        holder.function = function
        _last.append(_Prepared(model, function, holder))
    prepared = _last[0]
    converter = t.lite.TFLiteConverter.from_concrete_functions([prepared.function], trackable_obj=prepared.holder)
    save = converter._convert_concrete_functions_to_saved_model  # the step done once per model

    def saved_once(output_dir: str) -> Any:
        if prepared.directory is None:
            prepared.directory = tempfile.mkdtemp(prefix="tfopt-tflite-")
            prepared.saved = save(prepared.directory)
            prepared.state = (converter.saved_model_dir, converter._saved_model_tags,
                              converter._saved_model_exported_names, converter._trackable_obj)
        else:
            (converter.saved_model_dir, converter._saved_model_tags, converter._saved_model_exported_names,
             trackable) = prepared.state
            if converter.saved_model_dir:
                converter._parse_saved_model_args(always_enable_saved_model_import=True)
                converter._trackable_obj = trackable
        return prepared.saved

    converter._convert_concrete_functions_to_saved_model = saved_once
    return converter
