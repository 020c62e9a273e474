"""An ONNX model that never ends in ONNX Runtime: what the time-bound tests run."""

from __future__ import annotations


def forever_onnx(path: str, inputs: list[tuple[str, list[int | None]]], outputs: list[str], *, nested: bool = False) -> str:
    """An ONNX model that loops forever: ``Loop(M=2**63-1, cond=true)`` carrying the first input, the condition
    passed through unchanged (``nested``: that loop inside another loop's body, as tf2onnx writes nested TF
    while-loops). Each output is the carried value plus the other inputs' sum (so every input is read)."""
    import onnx
    from onnx import TensorProto, helper

    first = inputs[0][0]

    def body(name: str, inner: onnx.GraphProto | None) -> onnx.GraphProto:
        def n(x: str) -> str:  # names unique across scopes (ONNX graphs are in SSA form)
            return f"{name}_{x}"

        nodes = [helper.make_node("Identity", [n("cond_in")], [n("cond_out")])]
        if inner is None:
            nodes.append(helper.make_node("Identity", [n("v_in")], [n("v_out")]))
        else:
            nodes += [helper.make_node("Constant", [], [n("m")],
                                       value=helper.make_tensor(n("m"), TensorProto.INT64, [], [2**63 - 1])),
                      helper.make_node("Loop", [n("m"), n("cond_in"), n("v_in")], [n("v_out")], body=inner)]
        return helper.make_graph(nodes, name, [helper.make_tensor_value_info(n("i"), TensorProto.INT64, []),
                                               helper.make_tensor_value_info(n("cond_in"), TensorProto.BOOL, []),
                                               helper.make_tensor_value_info(n("v_in"), TensorProto.FLOAT, None)],
                                 [helper.make_tensor_value_info(n("cond_out"), TensorProto.BOOL, []),
                                  helper.make_tensor_value_info(n("v_out"), TensorProto.FLOAT, None)])

    loop_body = body("outer", body("inner", None) if nested else None)
    nodes = [helper.make_node("Constant", [], ["m"], value=helper.make_tensor("m", TensorProto.INT64, [], [2**63 - 1])),
             helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True])),
             helper.make_node("Loop", ["m", "c", first], ["carried"], body=loop_body)]
    total = "carried"
    for index, (name, _) in enumerate(inputs[1:]):
        nodes.append(helper.make_node("Add", [total, name], [f"sum{index}"]))
        total = f"sum{index}"
    nodes += [helper.make_node("Identity", [total], [out]) for out in outputs]
    graph = helper.make_graph(nodes, "forever",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path
