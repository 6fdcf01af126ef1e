"""Per-instance state: clients created once, the import mode, the collector during init, and SnapStart restore.

A capability declares each network client with :func:`per_instance`. In ``eager``
mode (provisioned concurrency, SnapStart: init is paid before traffic) all of them are
created at init; in ``lazy`` mode on first use. After a SnapStart restore every one is
dropped (its connections belong to the environment that took the snapshot) and, in
eager mode, created again. :func:`hold_gc` keeps the garbage collector off the init.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import sys
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from fastapi_lambda.constants import IMPORT_MODE_VARIABLE, INIT_GC_VARIABLE, ImportMode

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Identifies this execution environment (in warmup answers); new after every restore.
instance_id = uuid.uuid4().hex


class PerInstance(Generic[T]):
    """A value made by ``factory`` once per execution environment, on first :meth:`get`."""

    def __init__(self, factory: Callable[[], T], *, eager: bool | Callable[[], bool] = True) -> None:
        self.factory = factory
        self.eager = eager
        self.value: T | None = None

    def wanted_at_init(self) -> bool:
        """Whether eager mode makes it at init (``eager``, or what ``eager`` answers when it is a callable)."""
        return self.eager() if callable(self.eager) else self.eager

    def get(self) -> T:
        if self.value is None:
            self.value = self.factory()
        return self.value

    def reset(self) -> None:
        self.value = None


_registry: list[PerInstance[Any]] = []


def per_instance(factory: Callable[[], T], *, eager: bool | Callable[[], bool] = True) -> PerInstance[T]:
    """Declare a per-instance value (a boto3 client, a Redis pool) made by ``factory``.

    ``eager=False``: made on first use even in eager mode (values read over the network,
    such as settings, whose failure must wait for a request that needs them); still
    dropped after a SnapStart restore. A callable ``eager`` decides at init: a value only
    a configured capability needs (the token verifier's keys) is not made, nor its library
    imported, where that capability is off.
    """
    resource = PerInstance(factory, eager=eager)
    _registry.append(resource)
    return resource


def import_mode() -> ImportMode:
    return "eager" if os.environ.get(IMPORT_MODE_VARIABLE, "lazy") == "eager" else "lazy"


def on_lambda() -> bool:
    """Whether this process is a Lambda execution environment (the runtime sets both)."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get("LAMBDA_TASK_ROOT"))


_gc_held = False


def hold_gc() -> bool:
    """Hold the garbage collector until the handler is built (:func:`prepare` releases it); on Lambda only.

    Call it first thing in the handler's package, before FastAPI is imported (the generic entry point
    does). Importing FastAPI and pydantic makes hundreds of thousands of objects that live as long as
    the instance: the collector's passes over them are about a seventh of a cold import, and find
    next to no garbage. Released, they are frozen (``gc.freeze``), so later collections skip them too.
    Outside Lambda (tests, local servers) and with ``INIT_GC=on`` it does nothing; True if it held.
    """
    global _gc_held
    if _gc_held or not on_lambda() or os.environ.get(INIT_GC_VARIABLE, "").strip().lower() == "on":
        return _gc_held
    if gc.isenabled():
        gc.disable()
        _gc_held = True
    return _gc_held


def release_gc() -> None:
    """End :func:`hold_gc`: what init made is frozen (never collected again), the collector runs again."""
    global _gc_held
    if _gc_held:
        gc.freeze()
        gc.enable()
        _gc_held = False


def _create_all() -> None:
    for resource in _registry:
        try:
            if not resource.wanted_at_init():
                continue
            resource.get()
        except Exception:  # a client that cannot be made now is retried on first use
            logger.warning("Could not create %s at init", resource.factory.__qualname__, exc_info=True)


def prepare(app: Any) -> None:
    """Do at init what the import mode asks for (called once per handler, last), and end :func:`hold_gc`."""
    register_snapstart_hooks()
    try:
        if import_mode() == "eager":
            _build_everything(app)
    finally:
        release_gc()


def _build_everything(app: Any) -> None:
    deferred = sys.modules.get("fastapi_lambda.deferred")  # not loaded: the app defers no router
    if deferred is not None:
        deferred.load_all(app)  # before the clients: their modules declare some
    _create_all()
    # Starlette builds its middleware stack on the first request, FastAPI its OpenAPI
    # schema on the first /openapi.json: both happen here instead, before traffic.
    if hasattr(app, "build_middleware_stack"):
        app.middleware_stack = app.build_middleware_stack()
    if hasattr(app, "openapi"):
        app.openapi()


def after_restore() -> None:
    """Run by the Lambda runtime after a SnapStart restore."""
    global instance_id
    for resource in _registry:
        resource.reset()
    random.seed()  # every restored copy would otherwise draw the same numbers
    instance_id = uuid.uuid4().hex
    if import_mode() == "eager":
        _create_all()


_hooks_registered = False


def register_snapstart_hooks() -> bool:
    """Register :func:`after_restore` once where the runtime offers hooks (Python 3.12+ on Lambda)."""
    global _hooks_registered
    if _hooks_registered:
        return True
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:  # not on Lambda (local runs, tests without the package)
        return False
    register_after_restore(after_restore)
    _hooks_registered = True
    return True
