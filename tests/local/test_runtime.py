"""Execution environments: a small handler under the real awslambdaric and Python 3.13, through our Runtime API.

What Lambda does around a handler, checked on one whose behaviour each event chooses: cold
and warm starts, errors, timeouts and crashes (the instance is replaced), concurrency (one
process per concurrent invocation; reserved concurrency throttles), SnapStart's restore hooks,
init failures, and a bundle nothing writes into.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from cdk_app.local.runtime import FunctionPool, FunctionSpec, Throttled, host_architecture, runtime_python
from tests.local.conftest import needs_bundles, wait_for

pytestmark = pytest.mark.slow

HANDLER = '''
import os, sys, time
from snapshot_restore_py import register_after_restore
import layered

STATE = {"restored": False}
register_after_restore(lambda: STATE.update(restored=True))


def handler(event, context):
    time.sleep(event.get("sleep", 0))
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("exit"):
        os._exit(3)
    return {"pid": os.getpid(), "restored": STATE["restored"], "arn": context.invoked_function_arn,
            "layer": layered.VALUE, "event": event, "region": os.environ["AWS_REGION"],
            "memory": context.memory_limit_in_mb, "remaining_ms": context.get_remaining_time_in_millis()}
'''


@pytest.fixture(scope="module")
def python() -> Path:
    needs_bundles()
    return runtime_python("3.13")


@pytest.fixture
def bundle(tmp_path) -> tuple[Path, Path]:
    code, layer = tmp_path / "code", tmp_path / "layer"
    (code / "app").mkdir(parents=True)
    (code / "app" / "__init__.py").write_text("")
    (code / "app" / "h.py").write_text(HANDLER)
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "layered.py").write_text("VALUE = 'from the layer'\n")
    return code, layer


class LoggedPool(FunctionPool):
    """A pool with the list its log lines go to, for the tests to read."""

    logs: list[str]


def make_pool(python, bundle, tmp_path, logs: list[str], **spec) -> LoggedPool:
    code, layer = bundle
    settings = {"logical_id": "Fn", "label": "Fn", "name": "app-Fn",
                "arn": "arn:aws:lambda:us-east-1:123456789012:function:app-Fn", "handler": "app.h.handler",
                "runtime": "python3.13", "code": code, "layers": (layer,), "environment": {"FROM_TEMPLATE": "1"},
                "timeout_s": 5.0, "memory_mb": 256, "architecture": host_architecture(), **spec}
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    pool = LoggedPool(FunctionSpec(**settings), python=python, services={}, region="eu-west-1", work=work,
                      max_instances=spec.pop("max_instances", 2), log=logs.append)
    pool.logs = logs
    return pool


@pytest.fixture
def pool(python, bundle, tmp_path):
    logs: list[str] = []
    made = make_pool(python, bundle, tmp_path, logs)
    yield made
    made.stop()


def test_a_cold_start_then_warm_invocations_on_the_same_instance(pool, bundle):
    first, second = pool.invoke(b'{"n": 1}'), pool.invoke(b'{"n": 2}')
    assert first.ok and second.ok
    one, two = first.json(), second.json()
    assert one["event"] == {"n": 1} and one["layer"] == "from the layer" and one["region"] == "eu-west-1"
    assert one["arn"].endswith(":function:app-Fn:live") and one["memory"] == "256" and 0 < one["remaining_ms"] <= 5000
    assert one["pid"] == two["pid"]
    assert first.init_ms is not None and second.init_ms is None
    reports = [line for line in pool.logs if "REPORT RequestId:" in line]
    assert len(reports) == 2 and "Init Duration:" in reports[0] and "Init Duration:" not in reports[1]
    assert not list(bundle[0].rglob("__pycache__"))  # nothing was written into the bundle


def test_a_function_error_is_reported_and_the_instance_kept(pool):
    pid = pool.invoke(b"{}").json()["pid"]
    failed = pool.invoke(b'{"fail": true}')
    assert failed.error == "Unhandled"
    assert failed.json()["errorType"] == "ValueError" and failed.json()["errorMessage"] == "asked to fail"
    assert pool.invoke(b"{}").json()["pid"] == pid


def test_a_timeout_ends_the_instance_and_the_next_call_starts_a_new_one(python, bundle, tmp_path):
    logs: list[str] = []
    pool = make_pool(python, bundle, tmp_path, logs, timeout_s=1.0)
    try:
        pid = pool.invoke(b"{}").json()["pid"]
        timed_out = pool.invoke(b'{"sleep": 3}')
        assert timed_out.error == "Sandbox.Timedout"
        assert "Task timed out after 1.00 seconds" in timed_out.json()["errorMessage"]
        after = pool.invoke(b"{}")
        assert after.ok and after.json()["pid"] != pid and after.init_ms is not None
    finally:
        pool.stop()


def test_a_crash_is_an_exit_error_and_the_instance_is_replaced(pool):
    crashed = pool.invoke(b'{"exit": true}')
    assert crashed.error == "Runtime.ExitError" and "exit status 3" in crashed.json()["errorMessage"]
    assert pool.invoke(b"{}").ok


def test_concurrent_invocations_get_an_instance_each_up_to_the_cap(pool):
    results = []
    threads = [threading.Thread(target=lambda: results.append(pool.invoke(b'{"sleep": 0.5}'))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pids = {r.json()["pid"] for r in results}
    assert all(r.ok for r in results) and len(pids) == 2  # the third waited for one of the two (cap 2)


def test_reserved_concurrency_throttles_beyond_it(python, bundle, tmp_path):
    pool = make_pool(python, bundle, tmp_path, [], reserved_concurrency=1)
    try:
        pool.invoke(b"{}")
        busy = threading.Thread(target=pool.invoke, args=(b'{"sleep": 1}',))
        busy.start()
        wait_for(lambda: any(i.current and not i.current.done.is_set() for i in pool.instances), timeout=10,
                 interval=0.01, what="the first invocation to start")
        with pytest.raises(Throttled, match="reserved concurrency"):
            pool.invoke(b"{}")
        busy.join()
    finally:
        pool.stop()


def test_snapstart_runs_the_restore_hooks_and_reports_the_restore(python, bundle, tmp_path):
    logs: list[str] = []
    pool = make_pool(python, bundle, tmp_path, logs, snap_start=True)
    try:
        result = pool.invoke(b"{}")
        assert result.json()["restored"] is True and result.restore_ms is not None
        assert any("Restore Duration:" in line and "(snap-start)" in line for line in logs)
    finally:
        pool.stop()


def test_an_init_failure_fails_the_invocation_with_the_reason(python, bundle, tmp_path):
    pool = make_pool(python, bundle, tmp_path, [], handler="app.missing.handler")
    try:
        result = pool.invoke(b"{}")
        assert result.error == "Runtime.InitError"
        assert "Runtime.ImportModuleError" in json.loads(result.payload)["errorMessage"]
        assert pool.instances == []
    finally:
        pool.stop()
