"""Every construct default is the settings' default: a prop left out means what a key left out of cdk.json means.

Each construct's signature defaults are held against what :mod:`cdk_app.props` makes of the
default settings (:data:`cdk_app.settings.DEFAULTS`, with each capability switched on). A
difference fails here unless it is listed, with its reason, in :data:`ON_PURPOSE`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_

from cdk_app import props
from cdk_app.api import FastApiGateway
from cdk_app.auth import UserPool, WebFirewall
from cdk_app.bundling import BundlingTarget
from cdk_app.cache import ValkeyCache
from cdk_app.cold_start import ColdStart, ProvisionedConcurrency, Warmup
from cdk_app.function import DEFAULT_EXPECTED_DURATION, DEFAULT_MAX_TIMEOUT, DependenciesLayer, ServiceFunction
from cdk_app.network import Network
from cdk_app.observability import Observability
from cdk_app.parameters import AppParameters
from cdk_app.releases import ReleaseControl
from cdk_app.settings import DEFAULTS, EnvironmentSettings
from cdk_app.settings.schema import ColdStartSettings
from cdk_app.tasks import DEFAULT_WORKER_DURATION, FileIntake, TaskQueue, TaskWorker

#: The default settings with every capability on (a capability that is off has no construct to compare).
SETTINGS = EnvironmentSettings.model_validate({
    "cache": {"kind": "serverless"}, "tasks": {"enabled": True, "files": {"enabled": True}}, "auth": {"enabled": True}})

#: Props whose construct default differs from the settings' on purpose, and why.
ON_PURPOSE: Mapping[str, Mapping[str, str]] = {
    "FastApiGateway": {
        "public_routes": "cdk.json's default declares this repository's example routes (GET /, GET /health) public; "
                         "a gateway used alone makes nothing public that its user did not declare",
    },
    "ServiceFunction": {
        "max_timeout": "the stack caps the API function's timeout at its own gateway's limit; a function used alone "
                       "has no gateway to fit (FastApiFunction takes the lower of the two gateways' limits, 29 s)",
        "max_timeout_reason": "names the gateway of that cap",
    },
    "ValkeyCache": {"kind": "cache.kind defaults to none (no cache at all); a cache construct is one of the two kinds"},
}
#: Props that name this repository's own things or are derived from other settings, not defaults of a capability.
NOT_DEFAULTS = {"source", "handler", "environment", "description", "dependencies", "scopes", "path"}
#: What a construct makes of a prop left at None.
NONE_MEANS = {"target": BundlingTarget(), "expected_duration": DEFAULT_EXPECTED_DURATION}


def normal(value: Any) -> Any:
    """A value as both sides can state it: Durations in milliseconds, empty containers as None, sequences as tuples."""
    if isinstance(value, Duration):
        return value.to_milliseconds()
    if isinstance(value, Mapping):
        return {k: normal(v) for k, v in value.items()} or None
    if isinstance(value, list | tuple):
        return tuple(normal(v) for v in value) or None
    return value


def signature_defaults(construct: type) -> dict[str, Any]:
    parameters = inspect.signature(construct.__init__).parameters.values()
    return {p.name: NONE_MEANS.get(p.name) if p.default is None and p.name in NONE_MEANS else p.default
            for p in parameters if p.default is not inspect.Parameter.empty}


def differences(construct: type, given: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> tuple[
        dict[str, tuple[Any, Any]], int]:
    """(prop -> (construct default, settings default) where they differ, how many props were compared)."""
    defaults = signature_defaults(construct) if defaults is None else defaults
    skipped = NOT_DEFAULTS | set(ON_PURPOSE.get(construct.__name__, {}))
    compared = {name: (normal(defaults[name]), normal(value)) for name, value in given.items()
                if name in defaults and name not in skipped}
    return {name: pair for name, pair in compared.items() if pair[0] != pair[1]}, len(compared)


def worker_defaults() -> dict[str, Any]:
    """A TaskWorker's defaults: ServiceFunction's, with its own expected duration and memory."""
    stack = Stack(App(context={"aws:cdk:bundling-stacks": []}), "Worker")
    resource = TaskWorker(stack, "Worker").function.node.default_child
    assert isinstance(resource, lambda_.CfnFunction)
    return {**signature_defaults(ServiceFunction), "expected_duration": DEFAULT_WORKER_DURATION,
            "memory_size": resource.memory_size}


CASES = {
    "DependenciesLayer": (DependenciesLayer, lambda scope: props.dependencies(SETTINGS)),
    "Network": (Network, lambda scope: props.network(SETTINGS)),
    "ValkeyCache": (ValkeyCache, lambda scope: props.cache(SETTINGS)),
    "ServiceFunction": (ServiceFunction, lambda scope: {**props.functions(scope, SETTINGS, "dev"),
                                                        **props.api_function(SETTINGS, "dev")}),
    "TaskQueue": (TaskQueue, lambda scope: props.tasks(SETTINGS)),
    "FileIntake": (FileIntake, lambda scope: props.files(SETTINGS)),
    "UserPool": (UserPool, lambda scope: props.identity(scope, SETTINGS)),
    "FastApiGateway": (FastApiGateway, lambda scope: props.gateway(SETTINGS)),
    "WebFirewall": (WebFirewall, lambda scope: {"rate_limit": SETTINGS.api.waf.rate_limit,
                                                "log_retention": props.gateway(SETTINGS)["access_log_retention"],
                                                "removal_policy": props.gateway(SETTINGS)["removal_policy"]}),
    "AppParameters": (AppParameters, lambda scope: props.parameters(SETTINGS)),
    "Observability": (Observability, lambda scope: props.observability(SETTINGS)),
    "ReleaseControl": (ReleaseControl, lambda scope: props.release(SETTINGS)),
}


@pytest.mark.parametrize("name", CASES)
def test_construct_defaults_are_the_settings_defaults(name):
    construct, given = CASES[name]
    differ, compared = differences(construct, given(Stack(App(), "Defaults")))

    assert compared > 0, f"no prop of {name} was compared"
    assert not differ, f"{name}: construct default != settings default: {differ}"


def test_the_worker_defaults_are_the_tasks_settings():
    differ, compared = differences(TaskWorker, props.worker(SETTINGS, "dev"), worker_defaults())

    assert compared == 2 and not differ, differ


def test_the_bundling_target_defaults_are_the_settings():
    assert BundlingTarget() == props.target(SETTINGS)
    assert {f.name for f in fields(BundlingTarget)} == {"python_version", "architecture", "include_aws_sdk",
                                                         "require_compiled"}


def test_a_fastapi_function_alone_fits_either_gateway():
    assert DEFAULT_MAX_TIMEOUT.to_seconds() == min(props.api_function(SETTINGS.model_copy(update={"api": api}), "dev")[
        "max_timeout"].to_seconds() for api in (SETTINGS.api.model_copy(update={"type": t}) for t in ("http", "rest")))


@pytest.mark.parametrize("strategy", ["provisioned", "warmup"])
def test_the_cold_start_plan_defaults_are_the_settings(strategy):
    plan = props.cold_start(ColdStartSettings(strategy=strategy))
    if strategy == "provisioned":
        assert plan.provisioned == ProvisionedConcurrency()
    else:
        assert plan.warmup is not None
        assert normal(plan.warmup.rate) == normal(Warmup().rate) and plan.warmup == Warmup(rate=plan.warmup.rate)
    assert ColdStart().strategy == DEFAULTS.cold_start.strategy and ColdStart().import_mode is None


def test_a_drifted_default_is_caught():
    # The check itself: the status table's point-in-time recovery once defaulted to true here, false in config.
    drifted = {**signature_defaults(TaskQueue), "point_in_time_recovery": not SETTINGS.tasks.point_in_time_recovery}
    differ, _ = differences(TaskQueue, props.tasks(SETTINGS), drifted)

    assert set(differ) == {"point_in_time_recovery"}
