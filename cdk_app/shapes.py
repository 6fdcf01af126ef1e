"""The JSON shapes the tools read from a cloud assembly (``cdk.out``), typed once for all of them.

``json.loads`` gives ``Any``; these name what a synthesized template, a resource and the assembly's manifest
hold, and :func:`is_object` / :func:`is_array` narrow a value whose shape the template leaves open (an
intrinsic function or a literal) without a cast. Keys the tools do not read stay out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Required, TypedDict, TypeGuard


class Resource(TypedDict, total=False):
    """One entry of a template's ``Resources``."""

    Type: Required[str]
    Properties: dict[str, Any]
    Metadata: dict[str, Any]
    DeletionPolicy: str
    UpdatePolicy: dict[str, Any]
    Condition: str


class Template(TypedDict, total=False):
    """A synthesized CloudFormation template."""

    Resources: dict[str, Resource]
    Parameters: dict[str, dict[str, Any]]
    Conditions: dict[str, Any]
    Mappings: dict[str, dict[str, dict[str, Any]]]
    Outputs: dict[str, dict[str, Any]]


class Artifact(TypedDict, total=False):
    """One artifact of ``manifest.json`` (a stack, a nested assembly of a Stage, an asset manifest…)."""

    type: str
    environment: str
    displayName: str
    properties: dict[str, Any]


class Manifest(TypedDict, total=False):
    """A cloud assembly's ``manifest.json``."""

    artifacts: dict[str, Artifact]


def is_object(value: object) -> TypeGuard[dict[str, Any]]:
    """A JSON object (JSON keys are strings)."""
    return isinstance(value, dict)


def is_array(value: object) -> TypeGuard[list[Any]]:
    """A JSON array."""
    return isinstance(value, list)


def is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    """A JSON object, or any other read-only mapping with string keys."""
    return isinstance(value, Mapping)
