"""cnnlib's architecture, derived from its source: the layers import downwards only, no module
imports itself through others, the top level stays small, and one file holds a training loop."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnnlib"

# Each layer may import from its own layer and the ones before it, never from a later one.
LAYERS = [
    {"cnnlib", "cnnlib.files"},       # the package's docstring, files written atomically, the course's folders
    {"cnnlib.models"},                 # the networks, their layers and inits, the registry
    {"cnnlib.training"},               # data, the loop, tricks, speed ingredients, profiles
    {"cnnlib.lessons"},                # what the notebooks show
    {"cnnlib.grading"},                # the checks, learner versions, the class grader
    {"cnnlib.experiments"},            # the lessons' experiments and their reports
    {"cnnlib.cli", "cnnlib.grade"},    # the command lines
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The cnnlib modules that ``name`` imports (any import statement, also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from cnnlib.x import module`
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def layer(name: str) -> int:
    for depth, prefixes in enumerate(LAYERS):
        if any(name == p or (p != "cnnlib" and name.startswith(p + ".")) for p in prefixes):
            return depth
    raise AssertionError(f"{name} belongs to no layer: add it to LAYERS or move it into one")


def test_every_module_has_a_layer():
    for name in MODULES:
        layer(name)


def test_imports_point_down_the_layers():
    upward = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
              for a, targets in GRAPH.items() for b in targets if layer(b) > layer(a)]
    assert upward == []


def test_no_import_cycle():
    # A package's __init__ importing its own submodules is how re-exports work, not a cycle.
    def edges(a):
        return {b for b in GRAPH[a] if not (b.startswith(a + ".") and MODULES[a].name == "__init__.py")}

    done, on_path = set(), []

    def visit(a):
        if a in on_path:
            raise AssertionError("import cycle: " + " -> ".join(on_path[on_path.index(a):] + [a]))
        if a in done:
            return
        on_path.append(a)
        for b in sorted(edges(a)):
            visit(b)
        on_path.pop()
        done.add(a)

    for name in sorted(GRAPH):
        visit(name)


def test_the_checker_sees_a_cycle_and_an_upward_edge(monkeypatch):
    """The two tests above can fail: a made-up upward edge and a made-up cycle are caught."""
    monkeypatch.setitem(GRAPH, "cnnlib.models.layers", GRAPH["cnnlib.models.layers"] | {"cnnlib.training.loop"})
    with pytest.raises(AssertionError, match="cnnlib.models.layers"):
        test_imports_point_down_the_layers()
    monkeypatch.setitem(GRAPH, "cnnlib.training.loop", GRAPH["cnnlib.training.loop"] | {"cnnlib.models.layers"})
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycle()


def test_at_most_ten_modules_at_the_top_level():
    top = sorted(p.name for p in PACKAGE.iterdir()
                 if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file())
    assert len(top) <= 10, top


def training_loops(path: Path) -> list[str]:
    """The functions of ``path`` that call ``.backward()`` and then an optimizer's ``.step()``."""
    loops = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            source = ast.unparse(node)
            backward = source.find(".backward(")
            if backward >= 0 and re.search(r"\.step\(", source[backward:]):
                loops.append(f"{path.relative_to(ROOT)}:{node.name}")
    return loops


def test_one_file_holds_the_training_loop():
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    loops = [loop for f in files for loop in training_loops(f)]
    assert {loop.split(":")[0] for loop in loops} == {"cnnlib/training/loop.py"}, loops
