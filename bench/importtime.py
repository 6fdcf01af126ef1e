"""Where a cold import's time goes: ``python -X importtime`` in fresh processes, aggregated.

Each module's *self* time (its own body, not what it imports) is taken as the median over the
processes, then summed per top-level package. Compared with the FastAPI + Mangum floor from the same
layer, the modules only our handler imports are what the next regression will be named by.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable

#: How many rows of each list to print.
TOP = 15


def parse(stderr: str) -> dict[str, int]:
    """``{module: self µs}`` from the lines ``-X importtime`` writes to stderr."""
    times: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _cumulative, name = line.removeprefix("import time:").split("|", 2)
        times[name.strip()] = times.get(name.strip(), 0) + int(own)
    return times


def aggregate(samples: Iterable[dict[str, int]]) -> dict[str, float]:
    """The median self time of each module over the samples, in ms (0 in a sample that did not import it)."""
    samples = list(samples)
    modules = {name for sample in samples for name in sample}
    return {name: statistics.median(sample.get(name, 0) for sample in samples) / 1000 for name in modules}


def by_package(modules: dict[str, float]) -> dict[str, float]:
    packages: dict[str, float] = defaultdict(float)
    for name, ms in modules.items():
        packages[name.split(".")[0]] += ms
    return dict(packages)


def summary(ours: dict[str, float], floor: dict[str, float]) -> dict:
    """What results.json keeps: totals, the packages, and the modules the floor does not import."""
    only_ours = {name: ms for name, ms in ours.items() if name not in floor}
    return {"total_ms": {"ours": sum(ours.values()), "floor": sum(floor.values())},
            "packages_ms": {"ours": by_package(ours), "floor": by_package(floor)},
            "modules_ms": ours, "only_ours_ms": only_ours}


def lines(result: dict, processes: int) -> list[str]:
    """The tables: the heaviest packages (ours and the floor's), and the heaviest modules only ours imports."""
    ours, floor = result["packages_ms"]["ours"], result["packages_ms"]["floor"]
    out = [f"import time by package (self ms, median of {processes} processes with -X importtime, which adds its own "
           f"overhead): ours {result['total_ms']['ours']:.1f} ms, floor {result['total_ms']['floor']:.1f} ms"]
    rows = [("package", "ours", "floor")]
    rows += [(name, f"{ms:.1f}", f"{floor.get(name, 0):.1f}")
             for name, ms in sorted(ours.items(), key=lambda item: -item[1])[:TOP]]
    only = result["only_ours_ms"]
    out += _table(rows)
    out.append(f"\nmodules the floor does not import: {len(only)}, {sum(only.values()):.1f} ms in all; the heaviest:")
    out += _table([("module", "self ms"), *((name, f"{ms:.2f}") for name, ms in
                                           sorted(only.items(), key=lambda item: -item[1])[:TOP])])
    heaviest = sorted(result["modules_ms"].items(), key=lambda item: -item[1])[:TOP]
    out.append("\nthe heaviest modules of ours (self ms):")
    out += _table([("module", "self ms"), *((name, f"{ms:.2f}") for name, ms in heaviest)])
    return out


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    text = [" | ".join(cell.ljust(w) if j == 0 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths,
                                                                                                   strict=True)))
            for row in rows]
    return [text[0], "-+-".join("-" * w for w in widths), *text[1:]]
