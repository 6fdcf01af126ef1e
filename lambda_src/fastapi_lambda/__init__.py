"""What runs inside Lambda on behalf of the ``cdk_app`` constructs.

Event dispatch before Mangum, warmup answers and fan-out, the import mode and the
SnapStart hooks, for any ASGI application::

    from fastapi_lambda import lambda_handler
    handler = lambda_handler(app)

or no handler module at all: ``FastApiFunction(app="orders.main:app")`` points the
function at :mod:`fastapi_lambda.entry`. No CDK import anywhere in this package; the
constructs copy it into every function's code asset. Importing the package itself is
free (``cdk_app`` reads :mod:`fastapi_lambda.constants` at synth time): the names below
load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["LambdaHandler", "lambda_handler"]

if TYPE_CHECKING:
    from fastapi_lambda.dispatch import LambdaHandler, lambda_handler  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fastapi_lambda import dispatch

        return getattr(dispatch, name)
    raise AttributeError(f"module 'fastapi_lambda' has no attribute {name!r}")
