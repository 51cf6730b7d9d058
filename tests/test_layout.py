"""fashrec/index: no import circle between its modules (lazy imports inside functions count too),
the FAISS backend depends on the distances module only, and no file is over 400 lines.

    python tests/test_index_layout.py     # prints the import graph and the verdict
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fashrec" / "index"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of fashrec.index it imports}`` from the source, every import statement
    (top level or inside a function); ``from pkg import name`` points at ``pkg.name`` when that is a
    module of the package, else at ``pkg``."""
    files = module_files()
    graph = {}
    for name, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                           for a in node.names]
            else:
                assert not (isinstance(node, ast.ImportFrom) and node.level), f"{path}: relative import"
                continue
            edges |= {t for t in targets if t in files and t != name}
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


def test_no_import_circle():
    graph = import_graph()
    assert "fashrec.index.similarity_index" in graph and "fashrec.index.engines.base" in graph
    assert find_cycle(graph) is None, find_cycle(graph)


def test_faiss_backend_imports_only_the_distances():
    assert import_graph()["fashrec.index.faiss_backend"] == {"fashrec.index.distances"}


def test_files_are_short():
    long = {str(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


if __name__ == "__main__":
    graph, files = import_graph(), module_files()
    for module, edges in sorted(graph.items()):
        lines = len(files[module].read_text(encoding="utf-8").splitlines())
        print(f"{module:<40} {lines:>4} lines  -> {', '.join(sorted(e.removeprefix('fashrec.index.') for e in edges)) or '-'}")
    cycle = find_cycle(graph)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} import edges:",
          "acyclic" if cycle is None else f"CIRCLE {' -> '.join(cycle)}")
