"""Inline the taken branch of a functional ``If``/``StatelessIf`` whose condition is constant.

``If(cond=Const c, *args, then_branch=T, else_branch=E)`` => the body of ``T if c else E``, its
nodes renamed ``<if>/<branch>/...``, each argument an ``Identity`` of the matching If input, and
the If node itself an ``IdentityN`` of the branch results, so ``if:k`` consumers need no
rewiring (Identity removal then bypasses it). TF2 models (``tf.cond`` under ``tf.function``) bind
their training flag this way. The untaken branch's function is dropped later by dead pruning.
"""

from __future__ import annotations

from typing import Any

from tfopt.freezing.resolve_switch import constant_predicate
from tfopt.graph import Model, edge_ref, is_control, node_map, rewrite_node, tensor_node, tensor_port
from tfopt.passes.base import Pass, PassResult, Skip, copy_graph

IF_OPS = ("If", "StatelessIf")


class InlineCond(Pass):
    name = "inline_cond"

    def run(self, model: Model) -> PassResult:
        nodes = node_map(model.graph_def)
        targets = [n.name for n in model.graph_def.node
                   if n.op in IF_OPS and constant_predicate(nodes, n.input[0]) is not None]
        if not targets:
            return PassResult(model, False)
        graph_def = copy_graph(model.graph_def)
        library = {f.signature.name: f for f in graph_def.library.function}
        skips = []
        for name in targets:
            node = node_map(graph_def)[name]
            taken = "then_branch" if constant_predicate(node_map(graph_def), node.input[0]) else "else_branch"
            fdef = library.get(node.attr[taken].func.name)
            if fdef is None:
                skips.append(Skip(name, f"{taken} function '{node.attr[taken].func.name}' is not in the library"))
                continue
            inline_function(graph_def, node, fdef, f"{node.name}/{taken.split('_')[0]}/", first_arg=1)
        return PassResult(model.replace(graph_def=graph_def), True, skips)


def inline_function(graph_def: Any, node: Any, fdef: Any, prefix: str, *, first_arg: int = 0) -> None:
    """Put ``fdef``'s body into ``graph_def`` (nodes renamed ``prefix + name``), its arguments
    Identities of ``node``'s inputs from ``first_arg`` on, and ``node`` an IdentityN of its results.

    The body is read inside a ``tf.Graph`` holding ``graph_def``'s library: TensorFlow's reader checks that
    every function a body's ``If``/``While``/call names is known to the default graph, and in a process that
    only loaded a ``.pb`` it is known nowhere else (``ValueError: Function cond_true_68 was not found``)."""
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

    from tfopt._tf import graph_def_class
    from tfopt._tf import tf as _tf

    tf = _tf()
    library_only = graph_def_class()()
    library_only.library.CopyFrom(graph_def.library)
    with tf.Graph().as_default():
        tf.graph_util.import_graph_def(library_only, name="")
        body, nested_to_flat = function_def_to_graph_def(fdef)
    args = [r for r in node.input[first_arg:] if not is_control(r)]
    controls = [r for r in node.input if is_control(r)]
    arg_names = [a.name for a in fdef.signature.input_arg]
    renamed = {n.name: prefix + n.name for n in body.node}
    for body_node in body.node:
        new = graph_def.node.add()
        new.CopyFrom(body_node)
        new.name = renamed[body_node.name]
        del new.input[:]
        for ref in body_node.input:
            src = tensor_node(ref)
            if is_control(ref):
                new.input.append("^" + renamed[src])
            else:
                new.input.append(edge_ref(renamed[src], tensor_port(ref)))
        if body_node.op == "Placeholder" and body_node.name in arg_names:
            rewrite_node(new, "Identity", types={"T": body_node.attr["dtype"].type})
            new.input.append(args[arg_names.index(body_node.name)])
            new.input.extend(controls)
        new.attr.pop("_output_shapes", None)
    results = []
    for out_arg in fdef.signature.output_arg:
        flat = nested_to_flat[fdef.ret[out_arg.name]]
        results.append(edge_ref(renamed[tensor_node(flat)], tensor_port(flat)))
    rewrite_node(node, "IdentityN", inputs=results, type_lists={"T": node.attr["Tout"].list.type})
