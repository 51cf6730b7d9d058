"""The house: no import circle anywhere in the repository (lazy imports inside functions count too), the
FAISS backend depends on the distances module only, and no Python file outside tests/ is over 400 lines.

    python tests/test_layout.py     # prints the import graph and the verdict

Modules are named as they are imported: ``fashrec.index.persistence``, ``hub_card.model`` (installed as
``fashrec.hub_card``), ``space.recommender`` (which ``space/app.py`` imports as ``recommender``, the Space's
folder being on its path), ``training.train``, ``benchmarks.bench_index``, ``tools.mutation``.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = ("fashrec", "space", "hub_card", "training", "benchmarks", "tools")  # every folder of Python but tests/
MAX_LINES = 400
ALIASES = {"fashrec.hub_card": "hub_card"}  # pyproject's package-dir installs the folder under this name


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_files() -> list[Path]:
    return sorted(p for top in TOP for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def module_files() -> dict[str, Path]:
    return {module_name(p): p for p in python_files()}


def _canonical(name: str, importer: str, files: dict[str, Path]) -> str | None:
    """The repository module an imported name stands for, or None (a third-party or standard module)."""
    for alias, real in ALIASES.items():
        if name == alias or name.startswith(alias + "."):
            name = real + name[len(alias):]
    if name in files:
        return name
    folder = importer.rsplit(".", 1)[0] if "." in importer else ""
    sibling = f"{folder}.{name}" if folder in ("space", "benchmarks", "tools") else None  # scripts beside each other
    return sibling if sibling in files else None


def _absolute(node: ast.ImportFrom, importer: str, path: Path) -> str:
    """The absolute module of ``from <module> import ...``, relative ones (``from .checkpoint import``) included."""
    if not node.level:
        return node.module
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """``{module: repository modules it imports}`` from the source, every import statement (top level or
    inside a function); ``from pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg``."""
    files = module_files()
    graph = {}
    for name, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, name, path)
                targets = []
                for alias in node.names:
                    full = _canonical(f"{base}.{alias.name}" if base else alias.name, name, files)
                    targets.append(full if full is not None else base)
            else:
                continue
            edges |= {t for t in (_canonical(t, name, files) for t in targets) if t is not None and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "fashrec.index.distances" in graph["fashrec.index.focus"]  # a plain 'from fashrec.x import name'
    assert "fashrec.index.layout" in graph["fashrec.index.persistence"]
    assert "hub_card.checkpoint" in graph["hub_card"]  # a relative 'from .checkpoint import ...'
    assert "space.recommender" in graph["space.app"]  # a bare 'from recommender import ...'
    assert "hub_card" in graph["fashrec.training.trainer"]  # through the installed alias fashrec.hub_card
    assert {"training", "benchmarks", "tools", "hub_card"} <= {m.split(".")[0] for m in graph}


def test_a_circle_would_be_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle():
    graph = import_graph()
    assert find_cycle(graph) is None, find_cycle(graph)


def test_faiss_backend_imports_only_the_distances():
    assert import_graph()["fashrec.index.faiss_backend"] == {"fashrec.index.distances"}


def test_files_are_short():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines()) for p in python_files()}
    long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not long, long
    assert len(sizes) > 100  # the whole repository was read


if __name__ == "__main__":
    graph, files = import_graph(), module_files()
    for module, edges in sorted(graph.items()):
        lines = len(files[module].read_text(encoding="utf-8").splitlines())
        print(f"{module:<44} {lines:>4} lines  -> {', '.join(sorted(edges)) or '-'}")
    cycle = find_cycle(graph)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} import edges:",
          "acyclic" if cycle is None else f"CIRCLE {' -> '.join(cycle)}")
