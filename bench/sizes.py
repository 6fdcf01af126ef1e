"""What each Python function of a synthesized environment ships: its code asset and its layers, unzipped and
zipped as the CDK CLI zips assets (deflate at zlib's default level), against the article's naive bundle.

Read from a real cloud assembly (``cdk synth`` with bundling on), through ``cdk_app.local.template``, the
reader ``make local`` runs functions from.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Each function's zipped code + layers against the naive bundle zipped, and the largest unzipped API function.
ZIPPED_RATIO_TARGET = 0.35
API_UNZIPPED_TARGET_MB = 30.0
MB = 1024 * 1024


@dataclass
class Part:
    """A code asset or a layer: where it is, and what it weighs."""

    name: str
    path: Path | None  # None: a layer from outside the stack (an ARN), not in the assembly
    unzipped: int = 0
    zipped: int = 0


@dataclass
class FunctionSize:
    logical_id: str
    path: str  # the construct path, e.g. fastapi-lambda-dev/Api/Function
    handler: str
    parts: list[Part] = field(default_factory=list)

    @property
    def unzipped(self) -> int:
        return sum(p.unzipped for p in self.parts)

    @property
    def zipped(self) -> int:
        return sum(p.zipped for p in self.parts)

    @property
    def complete(self) -> bool:
        return all(p.path is not None for p in self.parts)


def unzipped_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def zipped_size(folder: Path, cache: dict[Path, int] | None = None) -> int:
    """The size of ``folder`` zipped the way the CDK CLI zips an asset (every file, deflate, default level)."""
    if cache is not None and folder in cache:
        return cache[folder]
    with tempfile.TemporaryDirectory(prefix="bench-zip-") as work:
        archive = Path(work) / "asset.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    zipped.write(file, file.relative_to(folder).as_posix())
        size = archive.stat().st_size
    if cache is not None:
        cache[folder] = size
    return size


def function_parts(stack: Any, logical_id: str, work: Path) -> list[Part]:
    """A function's code asset, then its layers in order (a layer from outside the stack has no path)."""
    parts = [Part("code", stack.asset(logical_id, work))]
    for layer in stack.properties(logical_id).get("Layers", []):
        ref = layer.get("Ref") if isinstance(layer, Mapping) else None
        if ref in stack.resources and stack.resources[ref].get("Type") == "AWS::Lambda::LayerVersion":
            parts.append(Part(f"layer {stack.path_of(ref).removesuffix('/Resource')}", stack.asset(ref, work)))
        else:
            parts.append(Part(f"layer {layer}", None))
    return parts


def function_sizes(assembly: Path, work: Path) -> list[FunctionSize]:
    """Every Python function of the assembly's stacks with an asset: code, then layers in order."""
    from cdk_app.local.template import _stacks_in  # every stack of the assembly (read_stack wants one)

    zipped_cache: dict[Path, int] = {}
    found = []
    for stack in _stacks_in(Path(assembly).resolve()):
        for logical_id, resource in stack.of_type("AWS::Lambda::Function").items():
            properties: Mapping[str, Any] = resource.get("Properties", {})
            if not str(properties.get("Runtime", "")).startswith("python") or "ZipFile" in properties.get("Code", {}):
                continue  # Node custom resources, inline code: not ours to size
            size = FunctionSize(logical_id, stack.path_of(logical_id).removesuffix("/Resource"),
                                properties.get("Handler", ""), function_parts(stack, logical_id, work))
            for part in size.parts:
                if part.path is not None:
                    part.unzipped, part.zipped = unzipped_size(part.path), zipped_size(part.path, zipped_cache)
            found.append(size)
    return found


def is_api(size: FunctionSize, name: str) -> bool:
    """Whether ``size`` is the function the bench measures: its construct path has ``name`` right after the stack."""
    parts = size.path.split("/")
    return len(parts) > 1 and parts[1] == name


def report(sizes: list[FunctionSize], naive: Path, api: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows for results.json and the lines of the table: each function's sizes, its ratio to the naive bundle."""
    naive_zipped, naive_unzipped = zipped_size(naive), unzipped_size(naive)
    rows = []
    lines = [f"naive article bundle ({naive.name}): {naive_unzipped / MB:.1f} MiB unzipped, {naive_zipped / MB:.1f} MiB "
             f"zipped; targets: code + layers zipped <= {ZIPPED_RATIO_TARGET:.2f} x naive, the API function "
             f"(<stack>/{api}) <= {API_UNZIPPED_TARGET_MB:.0f} MiB unzipped"]
    header = ["function", "handler", "part", "unzipped MiB", "zipped MiB", "zipped / naive", "target"]
    table = [header]
    for size in sizes:
        ratio = size.zipped / naive_zipped
        zipped_pass = size.complete and ratio <= ZIPPED_RATIO_TARGET
        checks = [f"zip <= {ZIPPED_RATIO_TARGET:.2f} {'PASS' if zipped_pass else 'MISS'}"]
        unzipped_pass = None
        if is_api(size, api):
            unzipped_pass = size.unzipped / MB <= API_UNZIPPED_TARGET_MB
            checks.append(f"unzipped <= {API_UNZIPPED_TARGET_MB:.0f} MiB {'PASS' if unzipped_pass else 'MISS'}")
        for part in size.parts:
            table.append([size.path, size.handler, part.name,
                          f"{part.unzipped / MB:.2f}" if part.path else "?", f"{part.zipped / MB:.2f}" if part.path else "?",
                          "", ""])
        table.append([size.path, size.handler, "total" + ("" if size.complete else " (a layer not sized)"),
                      f"{size.unzipped / MB:.2f}", f"{size.zipped / MB:.2f}", f"{ratio:.3f}", ", ".join(checks)])
        rows.append({"function": size.path, "logical_id": size.logical_id, "handler": size.handler,
                     "parts": [{"name": p.name, "path": str(p.path) if p.path else None, "unzipped_bytes": p.unzipped,
                                "zipped_bytes": p.zipped} for p in size.parts],
                     "unzipped_bytes": size.unzipped, "zipped_bytes": size.zipped, "zipped_over_naive": ratio,
                     "zipped_pass": zipped_pass, "unzipped_pass": unzipped_pass})
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        lines.append(" | ".join(cell.ljust(w) if j < 3 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths,
                                                                                                             strict=True))))
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    rows.append({"function": "naive article bundle", "unzipped_bytes": naive_unzipped, "zipped_bytes": naive_zipped})
    return rows, lines


if __name__ == "__main__":  # python bench/sizes.py ASSEMBLY NAIVE_DIR [API]: the table alone
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as scratch:
        arguments = sys.argv[1:]
        print("\n".join(report(function_sizes(Path(arguments[0]), Path(scratch)), Path(arguments[1]),
                               arguments[2] if len(arguments) > 2 else "Api")[1]))
