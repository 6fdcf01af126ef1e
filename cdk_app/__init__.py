"""Reusable AWS CDK constructs that run a FastAPI application on AWS Lambda.

The names below load on first use, so tools that need none of them (``python -m
cdk_app.report`` after a synth) do not start the jsii runtime for nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BundlingTarget": "bundling",
    "ConfigError": "settings",
    "DependenciesLayer": "function",
    "EnvironmentSettings": "settings",
    "FastApiFunction": "function",
    "FastApiGateway": "api",
    "FastApiStack": "stack",
    "ProjectSettings": "settings",
    "build_stacks": "stack",
    "load_settings": "settings",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from cdk_app.api import FastApiGateway  # noqa: F401
    from cdk_app.bundling import BundlingTarget  # noqa: F401
    from cdk_app.function import DependenciesLayer, FastApiFunction  # noqa: F401
    from cdk_app.settings import ConfigError, EnvironmentSettings, ProjectSettings, load_settings  # noqa: F401
    from cdk_app.stack import FastApiStack, build_stacks  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cdk_app' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cdk_app.{_EXPORTS[name]}"), name)
