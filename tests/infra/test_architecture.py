"""The rules that keep the house clean, checked on the code itself (docs/ARCHITECTURE.md says why).

The import graph is read with :mod:`ast` from every Python file of the repository: top-level
imports, imports inside functions and ``if TYPE_CHECKING:`` imports alike, since each of them
ties one file to another. Nothing is imported or run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Where Python finds the repository's modules: the root, the Lambda asset root, the consumer example's
#: source and the benchmark folder (its scripts import each other by bare name).
ROOTS = (REPO, REPO / "lambda_src", REPO / "examples" / "consumer" / "src", REPO / "bench")
#: What starts the jsii runtime (and Node): never below the constructs.
CDK = ("aws_cdk", "constructs", "cdk_nag", "jsii")


def python_files() -> Iterator[Path]:
    """The repository's own files: tracked or new, never what .gitignore names (virtualenvs, cdk.out, the
    local stack's and the bench's generated bundles, whose third-party packages have cycles of their own)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.py"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    for name in sorted(listed):
        if (REPO / name).is_file():
            yield REPO / name


@cache
def modules() -> dict[str, Path]:
    """Every importable name of every file (``cdk_app.settings.schema``, ``fastapi_lambda.cache``...)."""
    found: dict[str, Path] = {}
    for path in python_files():
        for root in ROOTS:
            if root in path.parents:
                parts = list(path.relative_to(root).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                if parts:
                    found.setdefault(".".join(parts), path)
    return found


def module_name(path: Path) -> str:
    """The name the file is imported by (the first root that holds it, the deepest one winning)."""
    root = max((r for r in ROOTS if r in path.parents), key=lambda r: len(r.parts))
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_nodes(tree: ast.AST, *, at_import: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement; ``at_import``: only those that run when the module is imported (not inside a
    function, not under ``if TYPE_CHECKING:``)."""
    if not at_import:
        yield from (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))
        return
    todo = list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


def imported_names(path: Path, *, at_import: bool = False) -> Iterator[tuple[str, int]]:
    """Each module an import statement of ``path`` names: ``from a import b`` is ``a.b`` when that is a
    module of the repository, else ``a`` (a name defined in ``a``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in _import_nodes(tree, at_import=at_import):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        else:
            base = node.module or ""
            if node.level:  # relative: from the file's own package up
                anchor = package[:len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in modules() else base), node.lineno


def resolve(name: str) -> str | None:
    """The repository module ``name`` is, or the one it lies in; None for other packages."""
    table = modules()
    parts = name.split(".")
    while parts:
        if ".".join(parts) in table:
            return ".".join(parts)
        parts.pop()
    return None


@cache
def graph(*, at_import: bool = False) -> dict[str, dict[str, int]]:
    """module -> {module it imports: line of the first such import}, within the repository; ``at_import``: only
    the imports that run when the module is imported."""
    edges: dict[str, dict[str, int]] = {}
    for path in python_files():
        source = module_name(path)
        targets = edges.setdefault(source, {})
        for name, line in imported_names(path, at_import=at_import):
            target = resolve(name)
            if target is not None and target != source:
                targets.setdefault(target, line)
    return edges


def third_party(path: Path) -> set[str]:
    """The top-level names of what ``path`` imports from outside the repository when it is imported."""
    return {name.split(".")[0] for name, _ in imported_names(path, at_import=True) if resolve(name) is None and name}


def cycles(edges: dict[str, set[str]] | dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
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
                    found.append(sorted(component))
    return found


def describe(component: list[str], edges: dict[str, dict[str, int]]) -> str:
    members = set(component)
    ties = [f"{a} -> {b} ({modules()[a].relative_to(REPO)}:{line})"
            for a in component for b, line in sorted(edges.get(a, {}).items()) if b in members]
    return "a cycle: " + "; ".join(ties)


def room(module: str) -> str:
    """What a reader sees as one room of cdk_app: a module, or a whole subpackage (cdk_app.settings)."""
    parts = module.split(".")
    path = modules()[module]
    if parts[0] == "cdk_app" and len(parts) > 2 or (len(parts) == 2 and path.name == "__init__.py"):
        return ".".join(parts[:2])
    return module


def closure(module: str, *, at_import: bool = False) -> set[str]:
    """``module`` and every repository module it imports, directly or not (``at_import``: what importing it loads)."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph(at_import=at_import).get(current, {}))
    return seen


# --- the rules ------------------------------------------------------------------------------------

def test_the_graph_reads_every_kind_of_import():
    # Guards the reader itself: a TYPE_CHECKING import and a function-level import are edges too.
    assert "cdk_app.stack" in graph()["app"]
    assert "fastapi_lambda.constants" in graph()["cdk_app.function"]
    assert len(modules()) > 100


def test_no_import_cycle_in_the_whole_repository():
    found = cycles(graph())
    assert not found, "\n".join(describe(component, graph()) for component in found)


def test_every_room_of_cdk_app_sits_above_all_it_imports():
    # A subpackage (settings/, bundling/, preflight/, local/) is one room: a cycle between rooms is an
    # import that runs back up, even when no two files import each other.
    rooms: dict[str, dict[str, int]] = {}
    for source, targets in graph().items():
        if source.split(".")[0] != "cdk_app":
            continue
        for target in targets:
            if target.split(".")[0] == "cdk_app" and room(target) != room(source):
                rooms.setdefault(room(source), {}).setdefault(room(target), 0)
    found = cycles(rooms)
    assert not found, f"rooms of cdk_app that import each other: {found}"


@pytest.mark.parametrize("module", [
    "fastapi_lambda", *(name for name in modules() if name.startswith("fastapi_lambda."))])
def test_the_runtime_package_imports_no_cdk(module):
    # It runs inside Lambda: neither CDK nor the constructs may reach it, not even in a function or for a type.
    for name in closure(module):
        assert not {n.split(".")[0] for n, _ in imported_names(modules()[name])} & set(CDK), f"{name} imports CDK"
        assert not name.startswith("cdk_app"), f"{module} reaches {name}"


@pytest.mark.parametrize("module", ["cdk_app.settings", "cdk_app.preflight", "cdk_app.bundling.interpreters",
                                    "cdk_app.report", "cdk_app.cost", "cdk_app.diagram", "cdk_app.local.stack",
                                    "cdk_app.local.invoke", "cdk_app.local.token"])
def test_what_runs_without_cdk_imports_none(module):
    # Importing aws_cdk starts Node: the settings, the preflight's rules, interpreter discovery (the local
    # stack calls it), the report and the local stack load without it. (The preflight's plugin is loaded
    # on first use of its name, not by the package.)
    for name in closure(module, at_import=True):
        assert not third_party(modules()[name]) & set(CDK), f"{module} reaches {name}, which imports CDK"


def test_the_settings_and_the_rules_they_apply_know_no_construct():
    # cdk_app.shapes only types the JSON the tools read: no construct, no CDK.
    for name in closure("cdk_app.settings"):
        assert name.startswith(("cdk_app.settings", "cdk_app.shapes", "fastapi_lambda")), \
            f"cdk_app.settings reaches {name}"


def test_only_the_apps_apply_the_rule_packs():
    # The constructs record their own acknowledgements (cdk_app.findings); compliance knows no construct.
    importers = {source for source, targets in graph().items() if "cdk_app.compliance" in targets}
    assert importers <= {"cdk_app.stack", "cdk_app.delivery", "cdk_app", "app"} | {
        name for name in importers if name.startswith(("tests.", "examples", "two_apis_app"))}, importers
    constructs = {name for name in closure("cdk_app.compliance") if name != "cdk_app.compliance"}
    assert constructs <= {"cdk_app.preflight", "cdk_app.preflight.plugin", "cdk_app.preflight.engine",
                          "cdk_app.shapes"}, constructs


CONTEXT_READS = ("try_get_context", "get_context", "set_context")
#: The only functions that read the CDK context: each CDK app's entry, which builds its stacks from it (the
#: environments' stacks, the delivery stack, and the local stack's app, which sets the architecture first), and
#: cdk_app.testing.skip_bundling, which a consumer's app or test calls on its App before adding stacks.
CONTEXT_READERS = {("cdk_app/stack.py", "build_stacks"), ("cdk_app/delivery.py", "build_delivery"),
                   ("cdk_app/local/synth.py", "main"), ("cdk_app/testing.py", "skip_bundling")}


def test_no_context_reads_below_the_apps():
    found = []
    for path in (REPO / "cdk_app").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
            for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
                name = getattr(call.func, "attr", None)
                where = str(path.relative_to(REPO))
                if name in CONTEXT_READS and (where, function.name) not in CONTEXT_READERS:
                    found.append(f"{where}:{call.lineno} ({function.name})")
    assert not found, f"context read below build_stacks: {found}"


if __name__ == "__main__":  # python tests/infra/test_architecture.py: the cycles, if any
    for component in cycles(graph()):
        print(describe(component, graph()))
    sys.exit(bool(cycles(graph())))
