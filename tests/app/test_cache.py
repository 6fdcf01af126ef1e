"""The app's cache against a real redis-server with TLS and a password, and in process.

The AUTH token is in a Secrets Manager secret (moto, server mode) whose name is in
``CACHE_SECRET_ID``; the client trusts the throwaway CA through ``SSL_CERT_FILE``.
Every failure (server gone, hung, wrong password, no secret) must still answer 200 from
the source, each cache call given the cache's time budget (counted, never timed), and the
breaker must open and close.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import pytest
from fastapi_lambda import cache as runtime_cache
from fastapi_lambda import lifecycle
from fastapi_lambda.cache import Cache, CircuitBreaker, LocalBackend
from fastapi_lambda.constants import (
    CACHE_COMMAND_TIMEOUT_VARIABLE,
    CACHE_CONNECT_TIMEOUT_VARIABLE,
    CACHE_ERRORS_METRIC,
    CACHE_HOST_VARIABLE,
    CACHE_MODE_VARIABLE,
    CACHE_PORT_VARIABLE,
    CACHE_SECRET_VARIABLE,
    DEFAULT_CACHE_COMMAND_TIMEOUT_MS,
    DEFAULT_CACHE_CONNECT_TIMEOUT_MS,
)
from service import items

from tests.app.conftest import loaded_after_a_request
from tests.app.redis_server import REDIS_SERVER, SKIP_REASON, HungServer, RedisServer, free_port, make_certificates
from tests.app.test_tasks import api

needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)
PASSWORD = "correct-horse-battery-staple-0123456789"
SOURCE_DELAY_S = 0.02
BUDGET_S = (DEFAULT_CACHE_CONNECT_TIMEOUT_MS + DEFAULT_CACHE_COMMAND_TIMEOUT_MS) / 1000
BREAKER_OPEN_S = 0.3


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    """A new backend (made from this test's environment) and a new breaker for every test."""
    monkeypatch.setattr(runtime_cache.backend, "value", None)
    monkeypatch.setattr(items, "cache", Cache(prefix="items:", breaker=CircuitBreaker(open_seconds=BREAKER_OPEN_S)))
    monkeypatch.setenv(items.SOURCE_DELAY_VARIABLE, str(SOURCE_DELAY_S * 1000))
    for variable in (CACHE_HOST_VARIABLE, CACHE_PORT_VARIABLE, CACHE_SECRET_VARIABLE, CACHE_MODE_VARIABLE,
                     CACHE_CONNECT_TIMEOUT_VARIABLE, CACHE_COMMAND_TIMEOUT_VARIABLE):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def redis_server(tmp_path, certificates):
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(tmp_path, certificates, PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def secret(aws, moto_endpoint):
    """Stores a token in a new secret; returns its name (what the function's environment carries)."""
    import boto3

    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint)

    def store(token: str) -> str:
        name = f"cache-auth-{uuid.uuid4().hex[:8]}"
        client.create_secret(Name=name, SecretString=token)
        return name

    return store


@pytest.fixture
def configure(monkeypatch, certificates):
    """Point the app's cache at a port, with the AUTH token's secret name, trusting the test CA."""

    def point(port: int, secret_id: str | None = None, **extra: str) -> None:
        monkeypatch.setenv("SSL_CERT_FILE", str(certificates[0]))
        monkeypatch.setenv(CACHE_HOST_VARIABLE, "127.0.0.1")
        monkeypatch.setenv(CACHE_PORT_VARIABLE, str(port))
        if secret_id:
            monkeypatch.setenv(CACHE_SECRET_VARIABLE, secret_id)
        for name, value in extra.items():
            monkeypatch.setenv(name, value)

    return point


def get_item(key: str) -> tuple[int, dict]:
    status, _, body = api("GET", f"/items/{key}")
    return status, body


@pytest.fixture
def budgets(monkeypatch) -> list[float | None]:
    """The time budget each cache call was given (``asyncio.timeout``'s argument), in order."""
    given: list[float | None] = []
    timeout = asyncio.timeout
    monkeypatch.setattr(runtime_cache.asyncio, "timeout", lambda delay: given.append(delay) or timeout(delay))
    return given


def origins(body: dict) -> tuple[str, str]:
    return body["served_from"], body["cache"]


def run(coroutine):
    """Run on a loop of its own: asyncio.run would unset the current loop, which Mangum's handler reuses."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


# --- against the real server --------------------------------------------------------------------

@needs_redis
def test_miss_then_hit_then_expiry(redis_server, secret, configure, monkeypatch):
    configure(redis_server.port, secret(PASSWORD))
    monkeypatch.setattr(items, "ITEM_TTL_SECONDS", 0.3)
    key = f"k{uuid.uuid4().hex[:6]}"

    status, first = get_item(key)
    _, second = get_item(key)
    stored = json.loads(redis_server.client().get(f"items:{key}"))
    time.sleep(0.4)
    _, third = get_item(key)

    assert status == 200 and origins(first) == ("source", "miss")
    assert origins(second) == ("cache", "hit") and second["item"] == first["item"] == stored
    assert origins(third) == ("source", "miss") and third["item"]["loaded_at"] != first["item"]["loaded_at"]
    assert items.cache.stats == {"miss": 2, "hit": 1}


@needs_redis
def test_server_stopped_mid_test_answers_from_the_source_within_budget_and_the_breaker_opens_and_closes(
        redis_server, secret, configure, budgets, caplog, capsys):
    configure(redis_server.port, secret(PASSWORD))
    assert origins(get_item("a")[1]) == ("source", "miss")
    assert origins(get_item("a")[1]) == ("cache", "hit")

    redis_server.stop()
    failing = [get_item("a") for _ in range(3)]
    calls_before_skipping = len(budgets)
    skipped = [get_item("a") for _ in range(3)]

    assert [(status, origins(body)) for status, body in failing] == [(200, ("source", "error"))] * 3
    # The breaker is open: the cache is not even tried (no call, so no time spent on it).
    assert [(status, origins(body)) for status, body in skipped] == [(200, ("source", "skipped"))] * 3
    assert len(budgets) == calls_before_skipping and budgets == pytest.approx([BUDGET_S] * len(budgets))  # each call bounded by the budget
    assert items.cache.stats == {"miss": 1, "hit": 1, "error": 3, "skipped": 3}
    assert items.cache.breaker.state == "open"
    assert "Cache circuit breaker opened" in caplog.text
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if CACHE_ERRORS_METRIC in line]
    assert len(metrics) == 3 and metrics[0]["_aws"]["CloudWatchMetrics"][0] == {
        "Namespace": "FastApiLambda", "Dimensions": [["Cache"]], "Metrics": [{"Name": CACHE_ERRORS_METRIC, "Unit": "Count"}]}
    assert (metrics[0]["Cache"], metrics[0][CACHE_ERRORS_METRIC], metrics[0]["reason"]) == ("127.0.0.1", 1, "connection")

    redis_server.start()  # same port, empty
    time.sleep(BREAKER_OPEN_S)
    assert origins(get_item("a")[1]) == ("source", "miss")  # the trial call: it answers, the breaker closes
    assert items.cache.breaker.state == "closed"
    assert origins(get_item("a")[1]) == ("cache", "hit")


@needs_redis
def test_a_failed_trial_opens_the_breaker_again(redis_server, secret, configure):
    configure(redis_server.port, secret(PASSWORD))
    redis_server.stop()
    for _ in range(3):
        get_item("b")
    time.sleep(BREAKER_OPEN_S)

    assert origins(get_item("b")[1]) == ("source", "error")  # the trial
    assert items.cache.breaker.state == "open"
    assert origins(get_item("b")[1]) == ("source", "skipped")


@needs_redis
def test_wrong_password_bypasses_the_cache_with_a_logged_error(redis_server, secret, configure, budgets, caplog):
    configure(redis_server.port, secret("not-the-password"))

    status, body = get_item("c")

    assert status == 200 and origins(body) == ("source", "error")
    assert budgets == pytest.approx([BUDGET_S])  # one call, bounded by the budget
    (record,) = [r for r in caplog.records if getattr(r, "cache_error", None)]
    assert record.levelno == logging.ERROR and record.cache_error == "auth"
    assert PASSWORD not in caplog.text and "not-the-password" not in caplog.text


@needs_redis
def test_tls_is_required_and_verified(redis_server, secret, configure, monkeypatch, caplog):
    # A roomy budget: what is checked is why the call fails, not how fast (a loaded machine handshakes slowly).
    configure(redis_server.port, secret(PASSWORD), **{CACHE_CONNECT_TIMEOUT_VARIABLE: "5000"})
    monkeypatch.delenv("SSL_CERT_FILE")  # the server's certificate is not signed by a trusted CA now

    status, body = get_item("d")

    assert status == 200 and origins(body) == ("source", "error")
    assert [r.cache_error for r in caplog.records if getattr(r, "cache_error", None)] == ["tls"]


def test_a_hung_server_costs_each_request_one_bounded_call_until_the_breaker_opens(configure, budgets, caplog):
    server = HungServer()
    configure(server.port)
    try:
        results = [get_item("e") for _ in range(4)]
        connections = len(server.connections)
    finally:
        server.close()

    assert [(status, origins(body)) for status, body in results] == [(200, ("source", "error"))] * 3 + [
        (200, ("source", "skipped"))]
    # Counted, not timed: one attempt per request, each given the budget, which it ran out (no retries).
    assert budgets == pytest.approx([BUDGET_S] * 3) and connections == 3
    assert {r.cache_error for r in caplog.records if getattr(r, "cache_error", None)} == {"timeout"}


def test_unreadable_secret_bypasses_the_cache(aws, configure, caplog):
    configure(free_port(), "no-such-secret")

    status, body = get_item("f")

    assert status == 200 and origins(body) == ("source", "error")
    assert [r.cache_error for r in caplog.records if getattr(r, "cache_error", None)] == ["secret"]
    assert runtime_cache.backend.value is None  # not cached: the next call reads the secret again


@pytest.fixture(scope="module", autouse=True)
def cluster_node(tmp_path_factory, certificates):
    """Launched when this module starts: a cluster node takes 2 s to declare itself ready."""
    if REDIS_SERVER is None:
        yield None
        return
    server = RedisServer(tmp_path_factory.mktemp("cluster"), certificates, PASSWORD, cluster=True).launch()
    yield server
    server.stop()


@needs_redis
def test_cluster_mode_talks_to_a_cluster_node(cluster_node, secret, configure):
    cluster_node.wait_ready()
    configure(cluster_node.port, secret(PASSWORD), **{CACHE_MODE_VARIABLE: "cluster"})

    answers = [origins(get_item("g")[1]) for _ in range(2)]

    assert answers == [("source", "miss"), ("cache", "hit")]


# --- in process, and the import and restore contracts ------------------------------------------

def test_without_a_host_the_in_process_cache_serves():
    assert origins(get_item("h")[1]) == ("source", "miss")
    assert origins(get_item("h")[1]) == ("cache", "hit")
    assert isinstance(runtime_cache.backend.value, LocalBackend)


def test_in_process_entries_expire_and_the_oldest_go_first():
    local = LocalBackend(max_entries=2)

    async def scenario():
        await local.set("a", b"1", ttl=0.05)
        await local.set("b", b"2", ttl=10)
        await local.get("a")  # used: "b" is now the oldest
        await local.set("c", b"3", ttl=10)
        evicted = await local.get("b")
        await asyncio.sleep(0.06)
        return evicted, await local.get("a"), await local.get("c")

    assert run(scenario()) == (None, None, b"3")


def test_values_that_are_not_json_are_refused_not_raised():
    assert run(Cache().set("k", {1, 2}, ttl=1)) is False


def test_lazy_mode_imports_no_redis_client_until_the_cache_is_used():
    configured = {CACHE_HOST_VARIABLE: "127.0.0.1", CACHE_SECRET_VARIABLE: "s"}

    assert loaded_after_a_request({"redis", "boto3"}, **configured) == []


def test_eager_mode_makes_the_client_at_init_and_a_restore_makes_a_new_one(aws, secret, configure, monkeypatch):
    configure(6379, secret(PASSWORD))
    monkeypatch.setenv("IMPORT_MODE", "eager")
    for resource in lifecycle._registry:
        monkeypatch.setattr(resource, "value", None)

    lifecycle.prepare(None)
    before = runtime_cache.backend.value
    lifecycle.after_restore()

    assert isinstance(before, runtime_cache.RedisBackend) and before.client.connection_pool.connection_kwargs["password"] \
        == PASSWORD
    assert runtime_cache.backend.value is not None and runtime_cache.backend.value is not before
