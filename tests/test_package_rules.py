"""Rules of the package's shape that the repository enforces itself (issue 26), read from the source
with ``ast`` (no import runs):

- no import cycle among tfopt's modules, lazy imports inside functions included, and an import of a
  name the package root defines (``from tfopt import __version__``) counted as an import of
  ``tfopt/__init__.py``, which imports whatever the public API re-exports;
- no module inside the package imports the package root itself (``import tfopt``): it imports the
  submodule it needs. The exceptions are the modules that show or measure the public API as a user
  calls it (:data:`API_CLIENTS`); nothing in the package imports them, so they close no loop;
- the package root holds at most :data:`ROOT_MODULES_MAX` modules: the public API (``__init__``,
  ``__main__``, ``_version``), errors, options and the primitives every layer shares; the rest lives
  in the package of its layer (``conversion/``, ``verification/``, ``loaders/``, ...).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "tfopt"


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """The tfopt modules ``name`` imports anywhere in its file (a package counts as its __init__)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]
            targets = [t for t in names if t in MODULES] + ([base] if any(t not in MODULES for t in names) else [])
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and target.split(".")[0] == "tfopt":
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}
# The quick start's demo, the coverage matrix and the op and layer sweeps call tfopt.load/freeze/convert as users do.
API_CLIENTS = {"tfopt.__main__", "tfopt.demos.demo", "tfopt.coverage.matrix", "tfopt.coverage.op_sweep",
               "tfopt.coverage.layer_sweep"}


ROOT_MODULES_MAX = 12


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycles_counting_lazy_imports_and_the_package_root():
    assert _cycles(GRAPH) == []


def test_api_clients_are_leaves():
    """Nothing in the package imports a module that imports the package root (so no loop through it)."""
    for name, imported in GRAPH.items():
        assert not imported & (API_CLIENTS - {"tfopt.__main__"}) or name in API_CLIENTS, name


def test_the_rule_sees_a_cycle_closed_through_the_package_root():
    """The checker itself: ``tfopt.a`` reading ``tfopt.__version__`` lazily closes a loop through
    ``tfopt/__init__``, which imports ``tfopt.a``."""
    graph = {"tfopt": {"tfopt.a"}, "tfopt.a": {"tfopt.b"}, "tfopt.b": {"tfopt"}, "tfopt.c": set()}
    assert _cycles(graph) == [["tfopt", "tfopt.a", "tfopt.b"]]
    assert _cycles({"tfopt": {"tfopt.a"}, "tfopt.a": set()}) == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "tfopt"))
def test_no_module_imports_the_package_root(name):
    assert "tfopt" not in GRAPH[name] or name in API_CLIENTS, (
        f"{MODULES[name]} imports the package root 'tfopt' (import tfopt / from tfopt import <name it defines>): "
        "import the submodule that defines the name instead")


def test_the_package_root_holds_at_most_twelve_modules():
    root = sorted(path.name for path in ROOT.glob("*.py"))
    assert len(root) <= ROOT_MODULES_MAX, (
        f"tfopt/ holds {len(root)} modules ({', '.join(root)}): a module belongs in the package of its "
        "layer (see ARCHITECTURE.md, 'Where a change goes'), not at the root")


MODULE_LINES_MAX = 400  # ../shared/STYLE.md: one concern per module; past this a module does several


def test_every_module_holds_at_most_400_lines():
    long = sorted((n, str(path.relative_to(ROOT.parent))) for path in ROOT.rglob("*.py")
                  if (n := sum(1 for _ in path.open(encoding="utf-8"))) > MODULE_LINES_MAX)
    assert not long, (f"modules over {MODULE_LINES_MAX} lines: {', '.join(f'{p} ({n})' for n, p in long)}: split each "
                      "by concern (one module per job, ARCHITECTURE.md 'A new module')")


def _is_debug(module: str) -> bool:
    return module == "tfopt.debug" or module.startswith("tfopt.debug.")


# ``tfopt debug`` sits on top of the pipeline: only the debug package itself and the CLI commands
# that run it import it. A helper production code needs lives in the layer both can import.
DEBUG_CLIENTS = ("tfopt.cli.debug",)


def test_production_code_never_imports_debug():
    offenders = sorted(f"{name} imports {', '.join(sorted(filter(_is_debug, imported)))}"
                       for name, imported in GRAPH.items()
                       if not _is_debug(name) and not name.startswith(DEBUG_CLIENTS) and any(map(_is_debug, imported)))
    assert offenders == []


def test_the_debug_rule_sees_a_lazy_import(tmp_path):
    """The checker itself: a function-level ``from tfopt.debug.compare import compare`` counts."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from tfopt.debug.compare import compare\n    return compare\n")
    assert any(map(_is_debug, _imports("tfopt.m", source)))


# The layers below verification (ARCHITECTURE.md) never import the pipeline above it: what one of them needs from
# there lives in a layer both may import, or the pipeline passes it in (OpenVINO's accuracy control gets the class
# rule as AccuracyControl.top1; `tfopt inspect` chooses between an artifact and a model in report/inspect.py).
# Freezing and optimizing verify each stage's graph, and a loader reads --finetune-data through verification's
# one data reader: only targets.py's emitters and runtimes are held below verification itself.
PIPELINE = ("tfopt.conversion", "tfopt.report", "tfopt.quantizing", "tfopt.fleet", "tfopt.cli", "tfopt.debug",
            "tfopt.coverage", "tfopt.demos")
BELOW = {
    "emitters": (("tfopt.emitters",), ("tfopt.verification", *PIPELINE)),
    "runtimes": (("tfopt.runtimes",), ("tfopt.verification", *PIPELINE)),
    "loaders": (("tfopt.loaders",), PIPELINE),
    "freezing-passes": (("tfopt.freezing", "tfopt.passes"), PIPELINE),
    "external-graphdef": (("tfopt.external", "tfopt.graphdef", "tfopt.graph", "tfopt._tf"), PIPELINE),
}


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@pytest.mark.parametrize(("layer", "above"), BELOW.values(), ids=BELOW.keys())
def test_a_lower_layer_never_imports_a_layer_above_it(layer, above):
    offenders = sorted(f"{name} imports {', '.join(sorted(i for i in imported if _within(i, above)))}"
                       for name, imported in GRAPH.items()
                       if _within(name, layer) and any(_within(i, above) for i in imported))
    assert offenders == [], "move the helper down (a layer both may import) or pass it in from the pipeline"
