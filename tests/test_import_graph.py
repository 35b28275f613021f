"""The layering of stages/ and auxreid_cli/: no import cycle between modules or between folders, imports inside
functions included, and the artifacts layer at the bottom (it imports no domain package and no stage module)."""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stages", "auxreid_cli")
#: What stages/artifacts/ may import from the project: the package itself (its version), the config schema, the
#: error type and the progress protocol.
ARTIFACTS_MAY_IMPORT = {"stages", "stages.config", "stages.errors", "stages.progress"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import names (`stages.cluster.run_cluster` -> `stages.cluster`), None outside it."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_imports(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:` (annotations only, never executed)."""
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            hidden |= {id(sub) for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))}
    return hidden


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its file (a package's own submodules left out)."""
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        hidden = _type_checking_imports(tree)
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                owner = _owner(target, modules)
                if owner is not None and owner != name and not owner.startswith(name + "."):
                    graph[name].add(owner)
    return graph


def _folder(module: str) -> str:
    """A subpackage is one node (stages.clustering); a top-level module (stages.rundir) stands alone."""
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_no_cycle_between_folders():
    folders: dict[str, set[str]] = defaultdict(set)
    for module, imported in import_graph().items():
        folders[_folder(module)] |= {_folder(other) for other in imported} - {_folder(module)}
    assert cycles(folders) == []


def test_artifacts_layer_imports_no_domain_package_or_stage():
    imported = {other for module, others in import_graph().items() if module.startswith("stages.artifacts")
                for other in others if not other.startswith("stages.artifacts")}
    assert imported <= ARTIFACTS_MAY_IMPORT, sorted(imported - ARTIFACTS_MAY_IMPORT)


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
