"""Cold-start and warm-request benchmark: our Lambda bundle vs the article's reference.

Run from the repository root:  .venv/bin/python bench/run.py [--runs N] [--quick]
                                [--python-version 3.13] [--out bench/out/results.json]
Everything it builds or writes goes to bench/out/ (see bench/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

sys.dont_write_bytecode = True  # no __pycache__ next to bench/ or cdk_app/: bench/out is the only output

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
CHILD = BENCH / "child.py"
EVENTS_PY = BENCH / "events.py"
REFERENCE_REQUIREMENTS = BENCH / "reference-requirements.txt"
MIN_RUNS = 15
WARMUP_CALLS, TIMED_CALLS = 300, 3000

sys.path.insert(0, str(REPO))  # for cdk_app, which also loads aws_cdk/jsii
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@dataclass(frozen=True)
class Variant:
    """One bundle under test, laid out as Lambda would load it."""

    name: str
    path: tuple[Path, ...]  # PYTHONPATH entries, in Lambda's order (/var/task first, then /opt/python)
    module: str  # the handler's module, what a cold start imports
    handler: str  # "module:attribute"


@dataclass(frozen=True)
class Metric:
    key: str  # field of a child's JSON sample
    label: str
    target: float | None = None  # highest acceptable ours/reference ratio of medians; None: informational


@dataclass(frozen=True)
class Scenario:
    """A measurement: what the child runs, what it reports, and in how many fresh processes."""

    name: str
    child_args: Callable[[Variant], list[str]]
    metrics: tuple[Metric, ...]
    processes: Callable[[argparse.Namespace], int]


# New scenarios (warmup ping vs GET, eager vs lazy imports, ...) go here; child.py runs them.
SCENARIOS = [
    Scenario("cold_import", lambda v: ["import", v.module],
             (Metric("import_ms", "cold import (ms)", 0.60), Metric("wall_ms", "cold process wall (ms)")),
             lambda a: a.runs),
    Scenario("warm_get", lambda v: ["warm", v.handler, "GET /", str(WARMUP_CALLS), str(TIMED_CALLS), str(EVENTS_PY)],
             (Metric("us_per_call", "warm GET (µs)", 0.40),),
             lambda a: max(1 if a.quick else 5, math.ceil(a.runs / 3))),
]


def find_interpreter(version: str) -> list[str]:
    from cdk_app.bundling import find_python, missing_interpreter_message

    command = find_python(version)
    if command is None:
        sys.exit(missing_interpreter_message(version))
    # Run the real binary, not a shim or launcher: those add their own start-up to every
    # sample and need the caller's environment, which the Lambda-like one does not carry.
    done = subprocess.run([*command, "-c", "import sys; print(sys.executable)"],
                          capture_output=True, text=True, check=True)
    return [done.stdout.strip()]


def build_ours(target) -> Variant:
    """Our real bundle, rebuilt every run so it always reflects the working tree."""
    from cdk_app.bundling import build_locally

    root = OUT / "ours"
    shutil.rmtree(root, ignore_errors=True)
    code = build_locally("code", root / "code", target=target)
    layer = build_locally("layer", root / "layer", target=target)
    return Variant("ours", (code, layer / "python"), "service.handler", "service.handler:handler")


def build_reference(target) -> Variant:
    """The article's packaging: everything pip-installed next to the app, no .pyc at all.

    pip runs on the host's Python, so the platform flags select wheels for the target
    interpreter. The install is cached on the requirements, Python version and machine.
    """
    root, stamp = OUT / "reference", OUT / "reference.key"
    key = hashlib.sha256(REFERENCE_REQUIREMENTS.read_bytes()
                         + f"|{target.python_version}|{target.machine}".encode()).hexdigest()
    cached = root.is_dir() and stamp.is_file() and stamp.read_text() == key
    if not cached:
        shutil.rmtree(root, ignore_errors=True)
        stamp.unlink(missing_ok=True)
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                   "--no-compile", "--target", str(root), "--only-binary=:all:", "--implementation", "cp",
                   "--python-version", target.python_version,
                   "--platform", f"manylinux2014_{target.machine}", "--platform", f"manylinux_2_28_{target.machine}",
                   "--requirement", str(REFERENCE_REQUIREMENTS)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"pip could not install the reference:\n{(done.stderr or done.stdout)[-3000:]}")
        stamp.write_text(key)
    shutil.copy2(BENCH / "reference_app.py", root / "reference_app.py")
    assert_no_bytecode(root)
    return Variant("reference", (root,), "reference_app", "reference_app:handler")


def assert_no_bytecode(root: Path) -> None:
    """The reference must compile everything at import, as it does on Lambda."""
    compiled = next(root.rglob("__pycache__"), None) or next(root.rglob("*.pyc"), None)
    if compiled:
        sys.exit(f"the reference bundle contains bytecode ({compiled}); delete {root} and rerun")


def lambda_env(variant: Variant, python_version: str) -> dict[str, str]:
    """A minimal environment like Lambda's; nothing from the caller's leaks in."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": ":UTC",
        "PYTHONPATH": os.pathsep.join(str(p) for p in variant.path),
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task and /opt are read-only on Lambda
        "LAMBDA_TASK_ROOT": str(variant.path[0]), "AWS_EXECUTION_ENV": f"AWS_Lambda_python{python_version}",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "fastapi-bench", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "APP_ENVIRONMENT": "bench",
    }


def run_child(python: list[str], variant: Variant, args: list[str], cwd: str, python_version: str) -> dict:
    """One fresh interpreter (-s: no user site-packages); returns its JSON sample plus wall time."""
    start = time.perf_counter()
    done = subprocess.run([*python, "-s", str(CHILD), *args], env=lambda_env(variant, python_version),
                          cwd=cwd, capture_output=True, text=True)
    wall_ms = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        sys.exit(f"{variant.name}: child {args[:2]} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_ms": wall_ms}


def measure(scenario: Scenario, variants: list[Variant], python: list[str], args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-cwd-") as cwd:
        for variant in variants:  # one discarded round: both bundles start from a warm page cache
            run_child(python, variant, scenario.child_args(variant), cwd, args.python_version)
        samples: dict[str, list[dict]] = {v.name: [] for v in variants}
        for _ in range(scenario.processes(args)):
            for variant in variants:  # interleaved, so drift (CPU clocks, neighbours) hits both alike
                samples[variant.name].append(
                    run_child(python, variant, scenario.child_args(variant), cwd, args.python_version))
    return samples


def summarize(scenario: Scenario, samples: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for metric in scenario.metrics:
        stats = {}
        for name, runs in samples.items():
            values = [run[metric.key] for run in runs]
            stats[name] = {"median": statistics.median(values), "min": min(values), "samples": values}
        ours, ref = stats["ours"], stats["reference"]
        ratio_median, ratio_min = ours["median"] / ref["median"], ours["min"] / ref["min"]
        rows.append({"scenario": scenario.name, "metric": metric.key, "label": metric.label, **stats,
                     "ratio_median": ratio_median, "ratio_min": ratio_min, "target_ratio_max": metric.target,
                     "pass": None if metric.target is None else ratio_median <= metric.target})
    return rows


def print_table(rows: list[dict]) -> None:
    header = ["metric", "ours median", "ours min", "reference median", "reference min",
              "ratio (median)", "ratio (min)", "target"]
    lines = [header]
    for r in rows:
        target = "-" if r["target_ratio_max"] is None else \
            f"<= {r['target_ratio_max']:.2f} {'PASS' if r['pass'] else 'MISS'}"
        lines.append([r["label"], f"{r['ours']['median']:.1f}", f"{r['ours']['min']:.1f}",
                      f"{r['reference']['median']:.1f}", f"{r['reference']['min']:.1f}",
                      f"{r['ratio_median']:.3f}", f"{r['ratio_min']:.3f}", target])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print(" | ".join(cell.ljust(w) if j == 0 else cell.rjust(w) for j, (cell, w) in enumerate(zip(line, widths))))
        if i == 0:
            print("-+-".join("-" * w for w in widths))


def git_commit() -> str | None:
    """HEAD's commit, read from .git directly (no git process); None before the first commit."""
    try:
        head = (REPO / ".git" / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = REPO / ".git" / head[5:]
        packed = REPO / ".git" / "packed-refs"  # refs move here on `git gc`
        return ref.read_text().strip() if ref.is_file() else next(
            (line.split()[0] for line in packed.read_text().splitlines() if line.endswith(" " + head[5:])), None)
    except OSError:  # no repository, or a worktree
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=MIN_RUNS, help=f"cold processes per bundle (min {MIN_RUNS})")
    parser.add_argument("--quick", action="store_true", help="allow fewer runs: a smoke test, not a result")
    parser.add_argument("--python-version", default="3.13")
    parser.add_argument("--out", type=Path, default=OUT / "results.json")
    args = parser.parse_args()
    if args.runs < (1 if args.quick else MIN_RUNS):
        parser.error(f"--runs must be at least {MIN_RUNS} (or use --quick for a smoke test)")

    from cdk_app.bundling import BundlingTarget

    machine = platform.machine().lower()
    architecture = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[machine]
    target = BundlingTarget(python_version=args.python_version, architecture=architecture)
    python = find_interpreter(args.python_version)
    version = subprocess.run([*python, "-c", "import sys; print(sys.version)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    started = time.perf_counter()
    reference = build_reference(target)
    variants = [build_ours(target), reference]  # ours first: the interleaving order
    print(f"built bundles in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    results, rows = {}, []
    for scenario in SCENARIOS:
        print(f"running {scenario.name} ({scenario.processes(args)} processes per bundle) ...", file=sys.stderr)
        results[scenario.name] = measure(scenario, variants, python, args)
        rows += summarize(scenario, results[scenario.name])
        assert_no_bytecode(reference.path[0])  # still none: every sample compiled from source

    print(f"\ninterpreter: Python {version} ({python[0]})")
    print(f"machine: {platform.machine()} (bundle architecture {target.architecture}), {platform.platform()}")
    per_scenario = ", ".join(f"{s.name} {s.processes(args)}" for s in SCENARIOS)
    print(f"runs: --runs {args.runs}; fresh processes per bundle: {per_scenario}; warm: {TIMED_CALLS} timed calls "
          f"after {WARMUP_CALLS} warm-up calls{' (QUICK: smoke test only)' if args.quick else ''}\n")
    print_table(rows)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "interpreter": {"version": version, "executable": python[0]},
        "platform": {"machine": platform.machine(), "architecture": target.architecture,
                     "system": platform.platform(), "cpus": os.cpu_count()},
        "config": {"runs": args.runs, "quick": args.quick,
                   "processes_per_bundle": {s.name: s.processes(args) for s in SCENARIOS},
                   "warmup_calls": WARMUP_CALLS, "timed_calls": TIMED_CALLS, "discarded_priming_rounds": 1},
        "variants": {v.name: {"pythonpath": [str(p) for p in v.path], "handler": v.handler} for v in variants},
        "results": rows,
        "raw": results,
    }, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
