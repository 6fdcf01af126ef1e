"""Reusable AWS CDK constructs that run a FastAPI application on AWS Lambda."""

from cdk_app.api import FastApiGateway
from cdk_app.bundling import BundlingTarget
from cdk_app.config import ConfigError, EnvironmentSettings, ProjectSettings, load_settings
from cdk_app.function import DependenciesLayer, FastApiFunction
from cdk_app.stack import FastApiStack, build_stacks

__all__ = [
    "BundlingTarget",
    "ConfigError",
    "DependenciesLayer",
    "EnvironmentSettings",
    "FastApiFunction",
    "FastApiGateway",
    "FastApiStack",
    "ProjectSettings",
    "build_stacks",
    "load_settings",
]
