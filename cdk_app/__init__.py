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
# A literal list: type checkers read __all__ to know what a py.typed package exports (a test keeps it equal).
__all__ = ["BundlingTarget", "ConfigError", "DependenciesLayer", "EnvironmentSettings", "FastApiFunction",
           "FastApiGateway", "FastApiStack", "ProjectSettings", "build_stacks", "load_settings"]

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from cdk_app.api import FastApiGateway
    from cdk_app.bundling import BundlingTarget
    from cdk_app.function import DependenciesLayer, FastApiFunction
    from cdk_app.settings import ConfigError, EnvironmentSettings, ProjectSettings, load_settings
    from cdk_app.stack import FastApiStack, build_stacks


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cdk_app' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cdk_app.{_EXPORTS[name]}"), name)
