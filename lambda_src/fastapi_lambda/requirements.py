"""What each capability of the runtime package needs installed beside it: the single table both sides read.

The constructs (``cdk_app.bundling``) put into a function's dependency layer the requirements of
the capabilities that function uses, and nothing a capability it does not use would pull in: a
function with no cache ships no ``redis``, one whose tokens the gateway verifies ships no
``cryptography``. Which capabilities a function uses follows from the variables the runtime
reads (:func:`capabilities_of`), so the layer and the code that runs can never disagree.
``pyproject.toml`` mirrors the table as the extras of the ``[runtime]`` install
(``tests/infra/test_bundling.py`` holds it to that). No CDK here, and nothing imported at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from fastapi_lambda.constants import (
    AUTH_VERIFY_VARIABLE,
    CACHE_HOST_VARIABLE,
    CONFIG_PATH_VARIABLE,
    SECRETS_VARIABLE,
    SECURE_PARAMETERS_VARIABLE,
    TASK_QUEUE_URL_VARIABLE,
    TASK_REGISTRY_VARIABLE,
    TASK_TABLE_VARIABLE,
    TRACING_VARIABLE,
)

Capability = Literal["core", "http", "tasks", "cache", "auth-verify", "parameters", "tracing"]

#: The web framework the HTTP side of the runtime package (auth, input guard, parameters' 503) builds on.
_FASTAPI = "fastapi>=0.110,<1"

#: Requirement lines (PEP 508) per capability. ``core`` is every function's: the dispatch before Mangum,
#: warmup, logs and metrics (Powertools). boto3/botocore are not listed: the Lambda runtime provides them.
CAPABILITY_REQUIREMENTS: Mapping[Capability, tuple[str, ...]] = {
    "core": ("mangum>=0.17,<1", "pydantic>=2,<3", "aws-lambda-powertools>=3,<4"),
    "http": (_FASTAPI,),
    "tasks": (),  # pydantic and Powertools' batch utility (core), boto3 (the runtime's)
    "cache": ("redis>=5,<9",),
    "auth-verify": ("pyjwt[crypto]>=2.8,<3",),  # RS256 needs cryptography
    "parameters": ("pydantic-settings>=2,<3", _FASTAPI),  # fastapi_lambda.parameters answers 503 with FastAPI's
    "tracing": ("aws-xray-sdk>=2,<3",),  # Powertools' Tracer on the X-Ray SDK (TRACING_MODE=xray)
}
CAPABILITIES: tuple[Capability, ...] = tuple(CAPABILITY_REQUIREMENTS)

#: The Powertools modules each capability's code imports (``observability``: Logger, Metrics, Tracer; ``tasks``:
#: the batch utility; ``parameters``: Parameters). A layer keeps these, what they import, and what the app's
#: own code imports of Powertools; its other subpackages (the event handler with its Swagger UI, idempotency,
#: feature flags, ...) are left out (``cdk_app.bundling.powertools``).
POWERTOOLS_MODULES: Mapping[Capability, tuple[str, ...]] = {
    "core": ("aws_lambda_powertools.logging", "aws_lambda_powertools.logging.filters", "aws_lambda_powertools.metrics"),
    "tasks": ("aws_lambda_powertools.utilities.batch",),
    "parameters": ("aws_lambda_powertools.utilities.parameters",),
    "tracing": ("aws_lambda_powertools.tracing",),
}

#: The ``pyproject.toml`` extra that installs a capability's requirements (``fastapi-lambda-cdk[cache]``).
EXTRAS: Mapping[Capability, str] = {capability: capability for capability in CAPABILITIES}


def requirements_for(capabilities: frozenset[Capability] | set[Capability]) -> tuple[str, ...]:
    """The requirement lines of ``capabilities`` (and of ``core``), each once, in the table's order."""
    wanted = {"core", *capabilities}
    lines = (line for capability in CAPABILITIES if capability in wanted for line in CAPABILITY_REQUIREMENTS[capability])
    return tuple(dict.fromkeys(lines))


def powertools_modules(capabilities: frozenset[Capability] | set[Capability]) -> tuple[str, ...]:
    """The Powertools modules a layer for ``capabilities`` (and ``core``) keeps: those of every capability whose
    packages it ships, since a layer serves every function whose :func:`dependency_set` it is (``tasks`` needs
    no package of its own, so the batch utility is in every layer)."""
    shipped = set(requirements_for(capabilities))
    return tuple(module for capability in CAPABILITIES if set(CAPABILITY_REQUIREMENTS[capability]) <= shipped
                 for module in POWERTOOLS_MODULES.get(capability, ()))


def dependency_set(capabilities: frozenset[Capability] | set[Capability]) -> frozenset[Capability]:
    """The fewest of ``capabilities`` (and ``core``) that need the same packages: two functions whose
    capabilities differ only by what adds nothing (``tasks``) or what another covers (``http`` beside
    ``parameters``) get the same set, so they can share one layer."""
    kept: list[Capability] = ["core", *(c for c in CAPABILITIES
                                        if c in capabilities and c != "core" and CAPABILITY_REQUIREMENTS[c])]
    for capability in list(kept[1:]):
        others = {line for other in kept if other != capability for line in CAPABILITY_REQUIREMENTS[other]}
        if set(CAPABILITY_REQUIREMENTS[capability]) <= others:
            kept.remove(capability)
    return frozenset(kept)


def capabilities_of(environment: Mapping[str, object], *, serves_http: bool) -> frozenset[Capability]:
    """The capabilities a function with this environment uses, as the runtime modules decide at run time.

    ``environment`` holds the function's variables (values may be unresolved CloudFormation
    references: only presence and the flags' literal values count). ``serves_http``: its entry
    point builds an ASGI app (``app=`` or a handler module), not only a task registry.
    """
    def present(name: str) -> bool:
        return environment.get(name) not in (None, "")

    found: set[Capability] = {"core"}
    if serves_http:
        found.add("http")
    if any(present(name) for name in (TASK_QUEUE_URL_VARIABLE, TASK_REGISTRY_VARIABLE, TASK_TABLE_VARIABLE)):
        found.add("tasks")
    if present(CACHE_HOST_VARIABLE):
        found.add("cache")
    if str(environment.get(AUTH_VERIFY_VARIABLE, "")).strip().lower() == "true":
        found.add("auth-verify")
    if any(present(name) for name in (CONFIG_PATH_VARIABLE, SECRETS_VARIABLE, SECURE_PARAMETERS_VARIABLE)):
        found.add("parameters")
    # fastapi_lambda.observability: an unset or unknown TRACING_MODE means xray.
    if str(environment.get(TRACING_VARIABLE) or "xray").strip().lower() not in ("adot", "off"):
        found.add("tracing")
    return frozenset(found)
