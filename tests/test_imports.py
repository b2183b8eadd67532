"""The package's import graph has no cycles: shared contracts live in leaf modules below their
users (edgequant/tensors.py, train/noop.py), never in one of two layers that import each other.

The graph is read from the source with ast, function-level imports included (a lazy import
hides a cycle from Python, not from the design)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "edgequant"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """edgequant module -> the edgequant modules it imports (anywhere in its body)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolved against this module's package
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import mod` imports the module pkg.mod when there is one
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for target in targets:
                while target and target not in modules:  # `import a.b.c` as the longest module
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("edgequant"):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_cycle_finder_finds_a_planted_cycle_and_nothing_else():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_data_layer_and_the_shared_contracts_are_in_no_import_cycle():
    graph = import_graph()
    assert "edgequant.data.sources" in graph and "edgequant.tensors" in graph
    mine = ("edgequant.data", "edgequant.datasets", "edgequant.tensors", "edgequant.usermodel")
    mine += ("edgequant.evaluate", "edgequant.train.fit", "edgequant.train.qat")
    touching = [c for c in cycles(graph) if any(m.startswith(mine) for m in c)]
    assert touching == [], touching
    assert graph["edgequant.tensors"] <= {"edgequant.errors"}


def test_the_package_has_no_import_cycles():
    found = cycles(import_graph())
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)
