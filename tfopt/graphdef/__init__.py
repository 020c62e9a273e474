"""Whole-GraphDef primitives beside :mod:`tfopt.graph`: node order, Grappler, a light protobuf schema,
calls into the function library."""
