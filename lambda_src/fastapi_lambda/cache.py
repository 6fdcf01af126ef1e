"""The app's cache: Redis/Valkey (ElastiCache) when configured, in-process otherwise; it never fails a request.

``cdk_app.cache`` names the endpoint in ``CACHE_HOST``/``CACHE_PORT`` and the Secrets
Manager secret holding the AUTH token in ``CACHE_SECRET_ID`` (its ARN or name, never its
value; read once per instance, and again after an authentication failure). Without ``CACHE_HOST`` an in-process TTL cache is the
embedded default (local runs, tests). Values are JSON::

    cache = Cache(prefix="items:")

    found = await cache.get_or_load(key, load=lambda: fetch_from_the_source(key), ttl=60)
    found.value, found.served_from   # "cache" or "source"

Every call has a time budget (connect + command timeout, ``CACHE_CONNECT_TIMEOUT_MS`` and
``CACHE_COMMAND_TIMEOUT_MS``). Any error (unreachable, hung, wrong password, bad data) is
logged and counted (a CloudWatch metric in embedded metric format) and the call answers
as a miss, so the request goes on to the source. After a few consecutive failures a
circuit breaker skips the cache for a few seconds instead of paying the timeout on
every request; one trial call then closes it again.

Cheap to import: ``redis.asyncio`` (~60 ms) and boto3 load when the client is made, on
first use (or at init in eager mode). The client is per instance (``lifecycle.per_instance``),
so a SnapStart restore makes a new one.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Literal, NamedTuple

from fastapi_lambda import lifecycle, observability
from fastapi_lambda.constants import (
    CACHE_COMMAND_TIMEOUT_VARIABLE,
    CACHE_CONNECT_TIMEOUT_VARIABLE,
    CACHE_ERRORS_METRIC,
    CACHE_HOST_VARIABLE,
    CACHE_MODE_VARIABLE,
    CACHE_PORT_VARIABLE,
    CACHE_SECRET_VARIABLE,
    CACHE_TLS_VARIABLE,
    DEFAULT_CACHE_COMMAND_TIMEOUT_MS,
    DEFAULT_CACHE_CONNECT_TIMEOUT_MS,
    METRICS_NAMESPACE,
)

logger = logging.getLogger(__name__)

#: Consecutive failures that open the breaker, and how long it then skips the cache.
BREAKER_FAILURES = 3
BREAKER_OPEN_SECONDS = 5.0
#: Entries the in-process cache keeps (least recently used ones go first).
LOCAL_MAX_ENTRIES = 1024

#: How a lookup went: a value from the cache, none there, the cache failed, or the breaker skipped it.
Outcome = Literal["hit", "miss", "error", "skipped"]


class Lookup(NamedTuple):  # NamedTuples, not dataclasses: a third of the import time
    outcome: Outcome
    value: Any = None

    @property
    def found(self) -> bool:
        return self.outcome == "hit"


class Loaded(NamedTuple):
    """What :meth:`Cache.get_or_load` answers: the value, where it came from and how the cache fared."""

    value: Any
    served_from: Literal["cache", "source"]
    cache: Outcome


# --- configuration ------------------------------------------------------------------------------

def _milliseconds(variable: str, default: int) -> float:
    """A positive number of milliseconds from the environment, in seconds (the default if unset or bad)."""
    try:
        value = float(os.environ.get(variable, default))
    except ValueError:
        value = default
    return (value if value > 0 else default) / 1000


class Settings(NamedTuple):
    host: str | None
    port: int
    secret_id: str | None
    mode: str
    tls: bool
    connect_timeout: float
    command_timeout: float

    @property
    def budget(self) -> float:
        """The longest one cache call may take: reaching the server, then one command."""
        return self.connect_timeout + self.command_timeout

    @classmethod
    def from_environment(cls) -> Settings:
        environ = os.environ
        return cls(
            host=environ.get(CACHE_HOST_VARIABLE) or None,
            port=int(environ.get(CACHE_PORT_VARIABLE) or 6379),
            secret_id=environ.get(CACHE_SECRET_VARIABLE) or None,
            mode="cluster" if environ.get(CACHE_MODE_VARIABLE) == "cluster" else "standalone",
            tls=environ.get(CACHE_TLS_VARIABLE, "true").strip().lower() not in ("0", "false", "no", "off"),
            connect_timeout=_milliseconds(CACHE_CONNECT_TIMEOUT_VARIABLE, DEFAULT_CACHE_CONNECT_TIMEOUT_MS),
            command_timeout=_milliseconds(CACHE_COMMAND_TIMEOUT_VARIABLE, DEFAULT_CACHE_COMMAND_TIMEOUT_MS),
        )


# --- backends: the same three calls on Redis/Valkey and in process -------------------------------

class LocalBackend:
    """An in-process TTL cache (least recently used first out): the embedded default."""

    budget = None  # nothing to wait for

    def __init__(self, max_entries: int = LOCAL_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self.entries[key]
            return None
        self.entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, data: bytes, ttl: float) -> None:
        self.entries[key] = (time.monotonic() + ttl, data)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        self.entries.pop(key, None)


class RedisBackend:
    """Redis/Valkey through one ``redis.asyncio`` client (a connection pool) per instance."""

    def __init__(self, settings: Settings, password: str | None) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.cluster import RedisCluster
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = dict(
            host=settings.host, port=settings.port, password=password, ssl=settings.tls,
            socket_connect_timeout=settings.connect_timeout, socket_timeout=settings.command_timeout,
            retry=Retry(NoBackoff(), 0),  # no retries: the source is the fallback, and the budget is small
        )
        if settings.mode == "cluster":
            self.client: Any = RedisCluster(**options)
        else:
            self.client = Redis(**options)
        self.budget: float | None = settings.budget

    async def get(self, key: str) -> bytes | None:
        return await self.client.get(key)

    async def set(self, key: str, data: bytes, ttl: float) -> None:
        await self.client.set(key, data, px=max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self.client.delete(key)


def read_secret(name: str) -> str:
    """The secret's string, read once per instance (boto3 is imported then): outside the cache's
    per-call budget, bounded by the invocation's time left instead (:mod:`fastapi_lambda.aws`)."""
    from fastapi_lambda import aws

    return aws.call("secretsmanager", "get_secret_value", SecretId=name)["SecretString"]


class SecretUnavailable(RuntimeError):
    """The AUTH token's secret could not be read (the cache is skipped; the next call tries again)."""


def make_backend() -> LocalBackend | RedisBackend:
    """The backend the environment configures (per instance: re-made after a SnapStart restore)."""
    settings = Settings.from_environment()
    if settings.host is None:
        return LocalBackend()
    importlib.import_module("redis.asyncio")  # first: eager mode loads the client library even if the secret fails
    password = None
    if settings.secret_id:
        try:
            password = read_secret(settings.secret_id)
        except Exception as error:
            raise SecretUnavailable(f"could not read the secret {settings.secret_id}: {error}") from error
    return RedisBackend(settings, password)


backend = lifecycle.per_instance(make_backend)


# --- the breaker and the metric -----------------------------------------------------------------

class CircuitBreaker:
    """Closed until ``failures`` consecutive errors; then open (the cache is skipped) for ``open_seconds``;
    then one trial call is let through: success closes it, failure opens it again."""

    def __init__(self, failures: int = BREAKER_FAILURES, open_seconds: float = BREAKER_OPEN_SECONDS) -> None:
        self.failures, self.open_seconds = failures, open_seconds
        self.consecutive = 0
        self.open_until: float | None = None
        self.trial = False

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        if self.open_until is None:
            return "closed"
        return "open" if time.monotonic() < self.open_until else "half-open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.trial:
            self.trial = True  # one call tries the cache again; the others keep skipping it until it answers
            return True
        return False

    def succeeded(self) -> None:
        if self.open_until is not None:
            logger.info("Cache answers again: circuit breaker closed")
        self.consecutive, self.open_until, self.trial = 0, None, False

    def failed(self) -> bool:
        """Count a failure; True when this one opened (or re-opened) the breaker."""
        self.consecutive += 1
        if self.trial or (self.open_until is None and self.consecutive >= self.failures):
            self.open_until, self.trial = time.monotonic() + self.open_seconds, False
            return True
        return False


def emit_error_metric(reason: str, operation: str) -> None:
    """One ``CacheErrors`` count (dimension ``Cache``: the endpoint) in CloudWatch's embedded metric format,
    a JSON line on stdout."""
    observability.write_metric(CACHE_ERRORS_METRIC, 1, {"Cache": os.environ.get(CACHE_HOST_VARIABLE) or "local"},
                               namespace=METRICS_NAMESPACE, reason=reason, operation=operation,
                               function=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local"))


# --- the cache ----------------------------------------------------------------------------------

class Cache:
    """Cache-aside with JSON values and TTLs; any failure is a miss, never an exception.

    ``stats`` counts hits, misses, errors and skips in this instance (the errors are also
    a CloudWatch metric). Keys get ``prefix``.
    """

    def __init__(self, prefix: str = "", *, breaker: CircuitBreaker | None = None) -> None:
        self.prefix = prefix
        self.breaker = breaker or CircuitBreaker()
        self.stats: Counter[str] = Counter()

    async def get(self, key: str) -> Lookup:
        """The cached value (``outcome`` "hit"), or why there is none ("miss", "error", "skipped")."""
        status, data = await self._call("get", key)
        if status != "ok":
            return Lookup(status)
        if data is None:
            self.stats["miss"] += 1
            return Lookup("miss")
        try:
            value = json.loads(data)
        except ValueError:  # not ours, or cut short: treat as absent, the source overwrites it
            self._failed("get", "bad-value", None)
            return Lookup("error")
        self.stats["hit"] += 1
        return Lookup("hit", value)

    async def set(self, key: str, value: Any, ttl: float) -> bool:
        """Store ``value`` (JSON-able) for ``ttl`` seconds; False if the cache did not take it."""
        try:
            data = json.dumps(value, separators=(",", ":")).encode()
        except (TypeError, ValueError) as error:  # the caller's bug, but still not the request's end
            self.stats["error"] += 1
            logger.error("Cache set skipped: the value is not JSON (%s)", error, extra={"cache_error": "bad-value"})
            return False
        return (await self._call("set", key, data, ttl))[0] == "ok"

    async def delete(self, key: str) -> bool:
        return (await self._call("delete", key))[0] == "ok"

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[Any]], ttl: float) -> Loaded:
        """The cached value, or ``await load()`` stored for ``ttl`` seconds.

        After a failed lookup the value is not stored: that would pay the time budget twice.
        """
        found = await self.get(key)
        if found.found:
            return Loaded(found.value, "cache", "hit")
        value = await load()
        if found.outcome == "miss":
            await self.set(key, value, ttl)
        return Loaded(value, "source", found.outcome)

    async def _call(self, operation: str, key: str, *args: Any) -> tuple[Literal["ok", "error", "skipped"], Any]:
        """Run one backend call within its time budget: ("ok", its result), or ("error"|"skipped", None)."""
        if not self.breaker.allow():
            self.stats["skipped"] += 1
            return "skipped", None
        try:
            store = backend.get()
            # asyncio.timeout(None) never expires: the in-process backend has nothing to wait for.
            async with asyncio.timeout(store.budget):
                result = await getattr(store, operation)(self.prefix + key, *args)
        except Exception as error:  # unreachable, hung, refused, bad password, no secret: go to the source
            self._failed(operation, _reason(error), error)
            return "error", None
        self.breaker.succeeded()
        return "ok", result

    def _failed(self, operation: str, reason: str, error: BaseException | None) -> None:
        self.stats["error"] += 1
        if reason == "auth":  # the token may have been rotated: the next call reads the secret again
            backend.reset()
        opened = self.breaker.failed()
        emit_error_metric(reason, operation)
        logger.error("Cache %s failed (%s); answering from the source", operation, reason,
                     extra={"cache_error": reason, "cache_operation": operation,
                            "breaker": "opened" if opened else self.breaker.state},
                     exc_info=error is not None and reason != "timeout")
        if opened:
            logger.error("Cache circuit breaker opened: skipping the cache for %.1f s", self.breaker.open_seconds)


def _reason(error: BaseException) -> str:
    """A short, stable name for a failure (the metric's ``reason``), without importing redis."""
    name, text = type(error).__name__, str(error)
    if isinstance(error, TimeoutError) or name == "TimeoutError":  # asyncio's, or redis' own
        return "timeout"
    if isinstance(error, SecretUnavailable):
        return "secret"
    if "Authentication" in name or "NOAUTH" in text or "WRONGPASS" in text or "invalid password" in text:
        return "auth"
    if "SSL" in name or "SSL" in text:
        return "tls"
    if isinstance(error, OSError) or "Connection" in name:
        return "connection"
    return name
