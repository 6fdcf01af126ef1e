"""Runs inside a fresh interpreter of the target version, laid out like Lambda.

`python -s child.py import MODULE[,MODULE...]` prints {"import_ms": ..., "cpu_ms": ...};
`python -s child.py warm MODULE:ATTR EVENT WARMUP CALLS EVENTS_PY` prints {"us_per_call": ...};
`python -s child.py ping MODULE:ATTR WARMUP PING_CALLS GET_CALLS EVENTS_PY` prints
{"ping_us": ..., "get_us": ..., "ping_over_get": ...} (warmup marker vs `GET /`, one process);
`python -s child.py first MODULE:ATTR EVENTS_PY` prints {"import_ms": ..., "first_get_ms": ...};
`python -s child.py batch MODULE:ATTR WARMUP BATCHES SIZE EVENTS_PY` prints {"batch_ms": ..., "messages_per_s": ...};
`python -s child.py items MODULE:ATTR CASE WARMUP CALLS EVENTS_PY` prints {"us_per_call": ..., "ms_per_call": ...}
(`GET /items/{key}` on a cache hit, a miss, or with the cache down and the breaker closed or open);
`python -s child.py guard MODULE:ATTR EVENT ROUNDS CALLS EVENTS_PY` prints {"on_us": ..., "off_us": ...,
"on_over_off": ..., "check_us": ..., "check_share": ...} (the module's `app` behind the input guard and
without it, alternating rounds in one process; the guard's check alone, and its share of the request).
Only the standard library is imported before the measured import (as in Lambda's
bootstrap, which has json loaded before it imports the handler).
"""

import sys

del sys.path[0]  # the script's own folder (bench/): not on Lambda's sys.path

import importlib
import json
import os
import time

# This script (also aliased by multiprocessing, which boto3 loads) and events.py.
BENCH_MODULES = {"__main__", "__mp_main__", "bench_events"}


def check_origins() -> None:
    """Fail if anything was imported from outside the PYTHONPATH entries and the stdlib.

    Those entries are the bundle (code, layer) and, for our variants, the simulated
    runtime SDK (/var/runtime, last). The interpreter's own site-packages sits inside
    its stdlib folder, so it is excluded explicitly: a module found there would not
    exist on Lambda.
    """
    import sysconfig  # imported only now: it would pre-load modules (threading) the handler needs

    def inside(path: str, roots) -> bool:
        return any(path.startswith(root + os.sep) for root in roots)

    allowed = [p for p in os.environ["PYTHONPATH"].split(os.pathsep) if p]
    allowed += [sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")]
    foreign = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    stray = sorted(name for name, mod in list(sys.modules.items())
                   if name not in BENCH_MODULES and (f := getattr(mod, "__file__", None))
                   and (not inside(os.path.abspath(f), allowed) or inside(os.path.abspath(f), foreign)))
    if stray:
        sys.exit(f"modules imported from outside the bundle, runtime and stdlib: {stray[:10]}")


def cold_import(modules: str) -> dict:
    """Import ``modules`` (comma-separated: ``fastapi,mangum`` is the floor): wall and CPU time."""
    start, cpu = time.perf_counter(), time.process_time()
    for module in modules.split(","):
        __import__(module)  # as an import statement does: -X importtime times it (importlib.import_module is not)
    elapsed, cpu_elapsed = time.perf_counter() - start, time.process_time() - cpu
    check_origins()
    return {"import_ms": elapsed * 1000, "cpu_ms": cpu_elapsed * 1000}


def load_events(events_py: str):
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("bench_events", events_py)
    events = sys.modules["bench_events"] = module_from_spec(spec)  # dataclasses look it up there
    spec.loader.exec_module(events)
    return events


def is_ok(event_name: str, response: dict) -> bool:
    """Never time an error path: HTTP must answer 200 (202 for a task), a warmup ping must be handled as one."""
    if event_name == "warmup ping":
        return response.get("handled") == "warmup"
    return response.get("statusCode") == {"POST /tasks": 202, "POST /orders": 201}.get(event_name, 200)


def per_call_us(handler, events, event_name: str, warmup: int, calls: int) -> tuple[float, dict]:
    event, context = events.EVENTS[event_name](), events.LambdaContext()
    for _ in range(warmup):
        response = handler(event, context)
        if not is_ok(event_name, response):
            sys.exit(f"{event_name} answered {str(response)[:500]}")
    start = time.perf_counter()
    for _ in range(calls):
        response = handler(event, context)
    elapsed = time.perf_counter() - start
    if not is_ok(event_name, response):
        sys.exit(f"{event_name} answered {str(response)[:500]} while timed")
    return elapsed / calls * 1e6, response


def load_handler(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def warm(target: str, event_name: str, warmup: str, calls: str, events_py: str) -> dict:
    handler = load_handler(target)
    check_origins()
    us, response = per_call_us(handler, load_events(events_py), event_name, int(warmup), int(calls))
    return {"us_per_call": us, "body": response.get("body", "")[:200]}


def ping(target: str, warmup: str, ping_calls: str, get_calls: str, events_py: str) -> dict:
    """Warmup ping vs full GET in one process, with logging set up as on Lambda.

    The runtime gives the root logger a handler, and the function logs JSON at INFO:
    so any INFO record on either path is formatted and written (here to /dev/null).
    """
    import logging  # here, not at the top: the other modes time imports that load it

    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))
    handler = load_handler(target)
    check_origins()
    events = load_events(events_py)
    ping_us, answer = per_call_us(handler, events, "warmup ping", int(warmup), int(ping_calls))
    get_us, _ = per_call_us(handler, events, "GET /", int(warmup), int(get_calls))
    return {"ping_us": ping_us, "get_us": get_us, "ping_over_get": ping_us / get_us, "answer": answer}


def first_get(target: str, events_py: str) -> dict:
    """Cold import, then the first `GET /`: lazy mode builds on first use what eager built at init."""
    start = time.perf_counter()
    handler = load_handler(target)
    import_ms = (time.perf_counter() - start) * 1000
    mode, sdk_loaded = os.environ.get("IMPORT_MODE"), "boto3" in sys.modules
    if sdk_loaded != (mode == "eager"):  # the import mode must really have taken effect
        sys.exit(f"IMPORT_MODE={mode} but boto3 {'was' if sdk_loaded else 'was not'} imported at init")
    events = load_events(events_py)  # after the import: it loads uuid and dataclasses
    event, context = events.EVENTS["GET /"](), events.LambdaContext()
    start = time.perf_counter()
    response = handler(event, context)
    first_get_ms = (time.perf_counter() - start) * 1000
    if not is_ok("GET /", response):
        sys.exit(f"first GET / answered {str(response)[:500]}")
    check_origins()
    return {"import_ms": import_ms, "first_get_ms": first_get_ms, "boto3_at_init": sdk_loaded}


def batch(target: str, warmup: str, batches: str, size: str, events_py: str) -> dict:
    """The worker on SQS batches of new tasks (against the moto server the parent runs)."""
    handler = load_handler(target)
    events = load_events(events_py)
    elapsed = 0.0
    for number in range(int(warmup) + int(batches)):
        event, context = events.sqs_batch(int(size)), events.LambdaContext()
        start = time.perf_counter()
        response = handler(event, context)
        if number >= int(warmup):
            elapsed += time.perf_counter() - start
        if response != {"batchItemFailures": []}:
            sys.exit(f"the batch answered {str(response)[:500]}")
    check_origins()
    per_batch = elapsed / int(batches)
    return {"batch_ms": per_batch * 1000, "messages_per_s": int(size) / per_batch}


#: What each case of `items` must answer: (served_from, cache).
ITEM_ANSWERS = {"hit": ("cache", "hit"), "miss": ("source", "miss"), "down-closed": ("source", "error"),
                "down-open": ("source", "skipped")}


def items(target: str, case: str, warmup: str, calls: str, events_py: str) -> dict:
    """`GET /items/{key}` through the handler: one key (hits after the first), a new key per call (misses),
    or a cache that never answers with the breaker kept closed (every call pays the budget) or open."""
    handler = load_handler(target)
    cache = importlib.import_module("service.items").cache
    if case == "down-closed":
        cache.breaker.failures = 10**9  # never opens: the cost of the calls before it would
    if case == "down-open":
        cache.breaker.open_seconds = 3600.0  # the warm-up calls open it; it stays open
    events = load_events(events_py)
    context = events.LambdaContext()
    keys = (f"miss-{n}-{os.getpid()}" if case == "miss" else "bench-hit" for n in range(10**9))
    expected = ITEM_ANSWERS[case]
    elapsed = 0.0
    for number in range(int(warmup) + int(calls)):
        event = events.with_gateway_claims(events.http_api_event("GET", f"/items/{next(keys)}"))  # a signed-in caller
        start = time.perf_counter()
        response = handler(event, context)
        if number >= int(warmup):
            elapsed += time.perf_counter() - start
            body = json.loads(response.get("body") or "{}")
            if response.get("statusCode") != 200 or (body.get("served_from"), body.get("cache")) != expected:
                sys.exit(f"GET /items ({case}) answered {str(response)[:500]}")
    check_origins()
    per_call = elapsed / int(calls)
    return {"us_per_call": per_call * 1e6, "ms_per_call": per_call * 1000}


def guard(target: str, event_name: str, rounds: str, calls: str, events_py: str) -> dict:
    """The input guard on vs off for one app, in one process: the module's ``app`` behind two handlers,
    timed in alternating rounds (so load hits both alike); the fastest round of each, and their ratio."""
    from fastapi_lambda import guard as guard_module
    from fastapi_lambda import lambda_handler

    app = importlib.import_module(target.split(":")[0]).app
    handlers = {"on": lambda_handler(app), "off": lambda_handler(app, guard=False)}
    check_origins()
    events = load_events(events_py)
    best = {name: float("inf") for name in handlers}
    event, limits, check = events.EVENTS[event_name](), handlers["on"].limits, guard_module.check_event
    for _ in range(int(rounds)):
        for name, handler in handlers.items():
            best[name] = min(best[name], per_call_us(handler, events, event_name, 50, int(calls))[0])
        start = time.perf_counter()
        for _ in range(int(calls)):  # the check alone, as the handler makes it (GET /: only the lookup)
            if event.get("body"):
                check(event, limits)
        best["check"] = min(best.get("check", float("inf")), (time.perf_counter() - start) / int(calls) * 1e6)
    return {"on_us": best["on"], "off_us": best["off"], "on_over_off": best["on"] / best["off"],
            "check_us": best["check"], "check_share": best["check"] / best["off"]}


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    result = {"import": cold_import, "warm": warm, "ping": ping, "first": first_get, "batch": batch,
              "items": items, "guard": guard}[mode](*args)
    print(json.dumps(result))
