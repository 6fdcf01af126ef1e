"""What of Powertools a layer keeps: the subpackages the function's code reaches, not the whole library.

``aws-lambda-powertools`` is about 7 MiB unzipped: the REST event handler with its Swagger UI, the
parser, idempotency, feature flags and more. The runtime package uses Logger, Metrics, Tracer, the
batch utility and Parameters (:data:`fastapi_lambda.requirements.POWERTOOLS_MODULES`, per capability).
A layer keeps the subpackages that those modules and the app's own Powertools imports reach through
Powertools' own imports, read from its source (every import statement, wherever it stands: in a
function, under ``TYPE_CHECKING``, in a ``try``), and leaves the other subpackages out. A subpackage is
kept or left whole (``aws_lambda_powertools.<name>``, and ``aws_lambda_powertools.utilities.<name>``),
so the imports it makes of itself by name (the parser's models) stay served.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

PACKAGE = "aws_lambda_powertools"
DISTRIBUTION = "aws-lambda-powertools"

#: Imports (importer, imported) that the runtime package never reaches, followed only when the app imports
#: Powertools itself: ``shared.functions.pydantic_to_dict`` loads the REST event handler's pydantic helpers,
#: for Logger's ``log_event`` of a pydantic event and for ``set_secret`` of a model; fastapi_lambda does neither.
UNREACHED_BY_THE_RUNTIME = frozenset({(f"{PACKAGE}.shared.functions", f"{PACKAGE}.event_handler.openapi.compat")})


def _module_name(site: Path, path: Path) -> str:
    relative = path.relative_to(site).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool) -> set[str]:
    """Every module named by an import statement of ``source`` (the module ``module``), relative ones resolved;
    ``from a import b`` names both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def app_imports(source: Path, *, skip: str) -> frozenset[str]:
    """The Powertools modules the app's own code in ``source`` imports (the runtime package's folder ``skip``
    aside: its imports are the table's)."""
    found: set[str] = set()
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source)
        if relative.parts[0] == skip or any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if PACKAGE not in text:
            continue
        try:
            names = imported_modules(text, _module_name(source, path), is_package=path.name == "__init__.py")
        except SyntaxError:  # not importable either: nothing of Powertools it could need
            continue
        found.update(name for name in names if _is_powertools(name))
    return frozenset(found)


def _is_powertools(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def unit_of(module: str) -> str:
    """The subpackage kept or left whole that ``module`` belongs to."""
    parts = module.split(".")
    return ".".join(parts[:3] if len(parts) > 2 and parts[1] == "utilities" else parts[:2])


def _removable_units(root: Path) -> Iterator[tuple[str, Path]]:
    """The subpackages of the installed Powertools at ``root`` that can be left out, with their folders."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
        if folder.name != "utilities":
            yield f"{PACKAGE}.{folder.name}", folder
    utilities = root / "utilities"
    if utilities.is_dir():
        for folder in sorted(p for p in utilities.iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
            yield f"{PACKAGE}.utilities.{folder.name}", folder


def reached_units(site: Path, roots: Iterable[str], *, runtime_only: bool) -> set[str]:
    """The subpackages that ``roots`` reach through Powertools' imports (and each module's parent packages)."""
    files = {_module_name(site, path): path for path in (site / PACKAGE).rglob("*.py")}
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for module in (".".join(parts[:end]) for end in range(1, len(parts) + 1)):
            if module in seen or module not in files:
                continue
            seen.add(module)
            path = files[module]
            imported = imported_modules(path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py")
            pending.extend(target for target in imported if _is_powertools(target)
                           and not (runtime_only and _unreached(module, target)))
    return {unit_of(module) for module in seen}


def _unreached(importer: str, imported: str) -> bool:
    """Whether an import of ``imported`` (or of a name in it) by ``importer`` is one the runtime never reaches."""
    return any(importer == source and (imported == target or imported.startswith(target + "."))
               for source, target in UNREACHED_BY_THE_RUNTIME)


def prune_powertools(site: Path, runtime_modules: Iterable[str], app_modules: Iterable[str] = ()) -> list[str]:
    """Leave out of ``site`` the Powertools subpackages that neither the runtime's modules for the function's
    capabilities nor the app's own imports reach; returns the subpackages left out."""
    root = site / PACKAGE
    if not root.is_dir():
        return []
    app_modules = list(app_modules)
    kept = reached_units(site, [*runtime_modules, *app_modules], runtime_only=not app_modules)
    removed: list[str] = []
    for unit, folder in _removable_units(root):
        if unit not in kept:
            shutil.rmtree(folder)
            removed.append(unit)
    return removed
