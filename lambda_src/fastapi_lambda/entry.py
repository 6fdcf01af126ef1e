"""The generic entry point: ``fastapi_lambda.entry.handler`` serves the app named by
``FASTAPI_LAMBDA_APP`` and runs the tasks of the registry named by ``FASTAPI_LAMBDA_TASKS``
(both ``package.module:attribute``), so an app needs no handler module.

``FastApiFunction(app="orders.main:app")`` sets the first; a worker-only function sets
only the second. Either attribute may be the object itself or a factory taking no
arguments (``"orders.main:create_app"``) whose result is one.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping
from typing import Any

from fastapi_lambda.constants import APP_VARIABLE, TASK_REGISTRY_VARIABLE
from fastapi_lambda.platform import architecture_check

with architecture_check():  # the first compiled dependency (pydantic_core) loads here: name a wrong architecture
    from fastapi_lambda.dispatch import LambdaHandler, lambda_handler


def load_object(reference: str, variable: str = APP_VARIABLE, example: str = "package.module:app") -> Any:
    """Import ``package.module:attribute`` and return what it names (called, if it is a factory)."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{variable}={reference!r} must look like {example!r}")
    with architecture_check():
        value = getattr(importlib.import_module(module_name), attribute)
    # An ASGI app function needs (scope, receive, send); one callable without arguments is a factory.
    if inspect.isfunction(value) and all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                                         for p in inspect.signature(value).parameters.values()):
        value = value()
    return value


def load_app(reference: str) -> Any:
    """Import ``package.module:attribute`` and return the ASGI app it names."""
    return load_object(reference)


def build_handler(environ: Mapping[str, str] = os.environ) -> LambdaHandler:
    """The handler for the app and/or the task registry the environment names."""
    app_reference, tasks_reference = environ.get(APP_VARIABLE), environ.get(TASK_REGISTRY_VARIABLE)
    if not app_reference and not tasks_reference:
        raise RuntimeError(f"Set {APP_VARIABLE} (the ASGI app, 'package.module:app') or {TASK_REGISTRY_VARIABLE} "
                           "(the task registry, 'package.module:registry'), or both, for fastapi_lambda.entry")
    app = load_app(app_reference) if app_reference else None
    tasks = load_object(tasks_reference, TASK_REGISTRY_VARIABLE, "package.module:registry") if tasks_reference else None
    return lambda_handler(app, tasks=tasks)


handler = build_handler()
