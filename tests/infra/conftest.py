"""Synthesize every environment once per test session.

Bundling is skipped (CDK still computes each asset's source hash, so templates
match a real synth) and CDK's built-in CloudFormation validation is off: the
validated synth runs once, in the main job (``make synth``) in CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from cdk_app.settings import read_cdk_json_context
from cdk_app.stack import FastApiStack, build_stacks
from cdk_app.testing import BUNDLING_STACKS

ENVIRONMENTS = ("dev", "staging", "prod")
#: For apps built without build_stacks (which reads our own ``skip_bundling`` setting).
SKIP_BUNDLING = {BUNDLING_STACKS: []}


def make_app(context: dict[str, Any] | None = None, outdir: Path | None = None) -> App:
    """An App as the CLI would build it from cdk.json, minus bundling and built-in validation."""
    return App(
        context={**read_cdk_json_context(), "skip_bundling": "true", **(context or {})},
        builtin_cloud_formation_validation=False,
        outdir=str(outdir) if outdir else None,
    )


def template_of(stack: Stack) -> Template:
    return Template.from_stack(stack)


def app_of(stack: Stack) -> App:
    """The app ``stack`` is in (``stack.node.root`` is typed as any construct)."""
    app = stack.node.root
    assert isinstance(app, App), f"{stack.node.path} is not in an App"
    return app


def only(template: Template, resource_type: str, prefix: str = "") -> tuple[str, dict]:
    """The logical id and body of the single resource of ``resource_type`` (whose id starts with ``prefix``)."""
    found = {k: dict(v) for k, v in template.find_resources(resource_type).items() if k.startswith(prefix)}
    assert len(found) == 1, f"expected one {resource_type} {prefix}*, found {len(found)}"
    return next(iter(found.items()))


#: Logical-id prefix of the API function's resources in this repository's stacks (the worker's is "TasksWorker").
API = "Api"


def alias_logical_id(template: Template, prefix: str = API) -> str:
    """The ``live`` alias of the function whose ids start with ``prefix`` (default: the API function)."""
    return only(template, "AWS::Lambda::Alias", prefix)[0]


@pytest.fixture
def context() -> dict[str, Any]:
    """The cdk.json context, freshly parsed: each test may change it."""
    return read_cdk_json_context()


@dataclass
class Synth:
    app: App
    stacks: dict[str, FastApiStack]
    templates: dict[str, Template]
    outdir: Path


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Synth:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = make_app(outdir=outdir)
    stacks = build_stacks(app)
    return Synth(app, stacks, {name: template_of(stack) for name, stack in stacks.items()}, outdir)


@pytest.fixture(params=ENVIRONMENTS)
def env_name(request) -> str:
    return request.param


@pytest.fixture
def template(synth, env_name) -> Template:
    return synth.templates[env_name]
