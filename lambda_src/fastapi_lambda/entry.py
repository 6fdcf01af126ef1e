"""The generic entry point: ``fastapi_lambda.entry.handler`` serves the app named by
``FASTAPI_LAMBDA_APP`` and runs the tasks of the registry named by ``FASTAPI_LAMBDA_TASKS``
(both ``package.module:attribute``), so an app needs no handler module.

``FastApiFunction(app="orders.main:app")`` sets the first; a worker-only function sets
only the second. Either attribute may be the object itself or a factory taking no
arguments (``"orders.main:create_app"``) whose result is one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fastapi_lambda import lifecycle
from fastapi_lambda.platform import architecture_check

lifecycle.hold_gc()  # until the handler is built: the app's imports run without collector passes

from fastapi_lambda.constants import APP_VARIABLE, TASK_REGISTRY_VARIABLE  # noqa: E402

with architecture_check():  # a compiled dependency that cannot load: name a wrong architecture
    from fastapi_lambda.dispatch import LambdaHandler, check_reference, lambda_handler  # noqa: E402
    from fastapi_lambda.dispatch import load_object as _load_object  # noqa: E402


def load_object(reference: str, variable: str = APP_VARIABLE, example: str = "package.module:app") -> Any:
    """Import ``package.module:attribute`` and return what it names (called, if it is a factory); an import that
    fails on a compiled module built for another architecture says so."""
    with architecture_check():  # the first compiled dependency (pydantic_core) usually loads with the app
        return _load_object(reference, variable, example)


def load_app(reference: str) -> Any:
    """Import ``package.module:attribute`` and return the ASGI app it names."""
    return load_object(reference, APP_VARIABLE)


def build_handler(environ: Mapping[str, str] = os.environ) -> LambdaHandler:
    """The handler for the app and/or the task registry the environment names.

    With an app, the registry is imported by the first SQS batch (at init in eager mode): an API
    function that also names it pays nothing for it until a batch comes. A worker without an app
    imports it at init, as every invocation needs it.
    """
    app_reference, tasks_reference = environ.get(APP_VARIABLE), environ.get(TASK_REGISTRY_VARIABLE)
    if not app_reference and not tasks_reference:
        raise RuntimeError(f"Set {APP_VARIABLE} (the ASGI app, 'package.module:app') or {TASK_REGISTRY_VARIABLE} "
                           "(the task registry, 'package.module:registry'), or both, for fastapi_lambda.entry")
    app = load_app(app_reference) if app_reference else None
    tasks: Any = None
    if tasks_reference:
        check_reference(tasks_reference, TASK_REGISTRY_VARIABLE, "package.module:registry")
        tasks = tasks_reference if app is not None else load_object(tasks_reference, TASK_REGISTRY_VARIABLE)
    return lambda_handler(app, tasks=tasks)


handler = build_handler()
