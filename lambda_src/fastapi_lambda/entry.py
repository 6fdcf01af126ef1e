"""The generic entry point: ``fastapi_lambda.entry.handler`` serves the app named by
``FASTAPI_LAMBDA_APP`` (``package.module:attribute``), so an app needs no handler module.

``FastApiFunction(app="orders.main:app")`` sets both. The attribute may be the ASGI app
or a factory taking no arguments (``"orders.main:create_app"``) whose result is one.
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

from fastapi_lambda.constants import APP_VARIABLE
from fastapi_lambda.dispatch import LambdaHandler


def load_app(reference: str) -> Any:
    """Import ``package.module:attribute`` and return the ASGI app it names."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{APP_VARIABLE}={reference!r} must look like 'package.module:app'")
    app = getattr(importlib.import_module(module_name), attribute)
    # An ASGI app function needs (scope, receive, send); one callable without arguments is a factory.
    if inspect.isfunction(app) and all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                                       for p in inspect.signature(app).parameters.values()):
        app = app()
    return app


handler = LambdaHandler(load_app(os.environ.get(APP_VARIABLE, "")))
