"""Runs inside a fresh interpreter of the target version, laid out like Lambda.

`python -s child.py import MODULE` prints {"import_ms": ...};
`python -s child.py warm MODULE:ATTR EVENT WARMUP CALLS EVENTS_PY` prints {"us_per_call": ...}.
Only the standard library is imported before the measured import (as in Lambda's
bootstrap, which has json loaded before it imports the handler).
"""

import sys

del sys.path[0]  # the script's own folder (bench/): not on Lambda's sys.path

import importlib
import json
import os
import time


def check_origins() -> None:
    """Fail if anything was imported from outside the bundle and the stdlib.

    The interpreter's own site-packages sits inside its stdlib folder, so it is
    excluded explicitly: a module found there would not exist on Lambda.
    """
    import sysconfig  # imported only now: it would pre-load modules (threading) the handler needs

    def inside(path: str, roots) -> bool:
        return any(path.startswith(root + os.sep) for root in roots)

    allowed = [p for p in os.environ["PYTHONPATH"].split(os.pathsep) if p]
    allowed += [sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")]
    foreign = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    stray = sorted(name for name, mod in list(sys.modules.items())
                   if name != "__main__" and (f := getattr(mod, "__file__", None))
                   and (not inside(os.path.abspath(f), allowed) or inside(os.path.abspath(f), foreign)))
    if stray:
        sys.exit(f"modules imported from outside the bundle: {stray[:10]}")


def cold_import(module: str) -> dict:
    start = time.perf_counter()
    importlib.import_module(module)
    elapsed = time.perf_counter() - start
    check_origins()
    return {"import_ms": elapsed * 1000}


def warm(target: str, event_name: str, warmup: str, calls: str, events_py: str) -> dict:
    module, attr = target.split(":")
    handler = getattr(importlib.import_module(module), attr)
    check_origins()
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("bench_events", events_py)
    events = sys.modules["bench_events"] = module_from_spec(spec)  # dataclasses look it up there
    spec.loader.exec_module(events)
    event, context = events.EVENTS[event_name](), events.LambdaContext()

    for _ in range(int(warmup)):
        response = handler(event, context)
        if response.get("statusCode") != 200:  # never time an error path
            sys.exit(f"{target} answered {response.get('statusCode')}: {str(response)[:500]}")
    n = int(calls)
    start = time.perf_counter()
    for _ in range(n):
        response = handler(event, context)
    elapsed = time.perf_counter() - start
    if response.get("statusCode") != 200:
        sys.exit(f"{target} answered {response.get('statusCode')} while timed")
    return {"us_per_call": elapsed / n * 1e6, "body": response.get("body", "")[:200]}


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    result = {"import": cold_import, "warm": warm}[mode](*args)
    print(json.dumps(result))
