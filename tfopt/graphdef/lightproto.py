"""A minimal GraphDef schema in a private protobuf pool, for reading ``.pb`` files without
importing TensorFlow (``import tensorflow`` costs seconds; ``tfopt inspect x.pb`` should not).

Field numbers match ``tensorflow/core/framework/*.proto``; the function library is read as far as
its functions' names, arguments and nodes; unknown fields (the rest, debug info) are kept as unknown bytes, so a binary GraphDef parses completely. Enum fields are
declared as int32, which has the same wire encoding. Text ``.pbtxt`` files use TensorFlow's classes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_SCALARS = {"string": _F.TYPE_STRING, "bytes": _F.TYPE_BYTES, "int64": _F.TYPE_INT64,
            "int32": _F.TYPE_INT32, "float": _F.TYPE_FLOAT, "double": _F.TYPE_DOUBLE, "bool": _F.TYPE_BOOL}

# message -> [(field name, number, type, repeated)]; a type not in _SCALARS is a message name.
_SCHEMA: dict[str, list[tuple[str, int, str, bool]]] = {
    "Dim": [("size", 1, "int64", False), ("name", 2, "string", False)],
    "TensorShapeProto": [("dim", 2, "Dim", True), ("unknown_rank", 3, "bool", False)],
    "TensorProto": [("dtype", 1, "int32", False), ("tensor_shape", 2, "TensorShapeProto", False),
                    ("tensor_content", 4, "bytes", False), ("float_val", 5, "float", True),
                    ("double_val", 6, "double", True), ("int_val", 7, "int32", True),
                    ("string_val", 8, "bytes", True), ("int64_val", 10, "int64", True),
                    ("bool_val", 11, "bool", True), ("half_val", 13, "int32", True)],
    "ListValue": [("s", 2, "bytes", True), ("i", 3, "int64", True), ("f", 4, "float", True),
                  ("b", 5, "bool", True), ("type", 6, "int32", True), ("shape", 7, "TensorShapeProto", True),
                  ("tensor", 8, "TensorProto", True), ("func", 9, "NameAttrList", True)],
    "AttrValue": [("list", 1, "ListValue", False), ("s", 2, "bytes", False), ("i", 3, "int64", False),
                  ("f", 4, "float", False), ("b", 5, "bool", False), ("type", 6, "int32", False),
                  ("shape", 7, "TensorShapeProto", False), ("tensor", 8, "TensorProto", False),
                  ("placeholder", 9, "string", False), ("func", 10, "NameAttrList", False)],
    "NameAttrList": [("name", 1, "string", False), ("attr", 2, "map:AttrValue", True)],
    "NodeDef": [("name", 1, "string", False), ("op", 2, "string", False), ("input", 3, "string", True),
                ("device", 4, "string", False), ("attr", 5, "map:AttrValue", True)],
    "VersionDef": [("producer", 1, "int32", False), ("min_consumer", 2, "int32", False),
                   ("bad_consumers", 3, "int32", True)],
    # the function library: each function's name, arguments and nodes (`tfopt inspect` counts them);
    # its other fields (ret, attrs) stay unknown bytes
    "ArgDef": [("name", 1, "string", False), ("type", 3, "int32", False)],
    "OpDef": [("name", 1, "string", False), ("input_arg", 2, "ArgDef", True), ("output_arg", 3, "ArgDef", True)],
    "FunctionDef": [("signature", 1, "OpDef", False), ("node_def", 3, "NodeDef", True)],
    "FunctionDefLibrary": [("function", 1, "FunctionDef", True)],
    "GraphDef": [("node", 1, "NodeDef", True), ("library", 2, "FunctionDefLibrary", False),
                 ("versions", 4, "VersionDef", False)],
}


@cache
def graph_def_class() -> Any:
    """The light ``GraphDef`` message class (fields ``node``, ``library`` and ``versions``)."""
    fdp = descriptor_pb2.FileDescriptorProto(name="tfopt_light_graph.proto", package="tfopt_light", syntax="proto3")
    for msg_name, fields in _SCHEMA.items():
        msg = fdp.message_type.add(name=msg_name)
        for fname, number, ftype, repeated in fields:
            field = msg.field.add(name=fname, number=number, label=_REP if repeated else _OPT)
            if ftype.startswith("map:"):
                entry = msg.nested_type.add(name=fname.capitalize() + "Entry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, label=_OPT, type=_F.TYPE_STRING)
                entry.field.add(name="value", number=2, label=_OPT, type=_F.TYPE_MESSAGE,
                                type_name=f".tfopt_light.{ftype[4:]}")
                field.type, field.type_name = _F.TYPE_MESSAGE, f".tfopt_light.{msg_name}.{entry.name}"
            elif ftype in _SCALARS:
                field.type = _SCALARS[ftype]
            else:
                field.type, field.type_name = _F.TYPE_MESSAGE, f".tfopt_light.{ftype}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tfopt_light.GraphDef"))
