"""The preflight as a CDK validation plugin: it reads every synthesized template of the app.

Registered with ``Validations.of(app).add_plugins(Preflight())`` (``add_compliance_checks``
does it), it runs after synthesis on the CloudFormation templates, so it sees every resource:
the constructs', CDK's own and the consumer's. An error fails ``cdk synth``; a warning (an
account-dependent limit) is printed and recorded in ``cdk.out/validation-report.json``.
Acknowledge a finding where it is deliberate, with its reason:
``Validations.of(construct).acknowledge(Acknowledgment(id="Preflight::<RULE-ID>", reason=...))``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
)

from cdk_app.preflight.engine import RULES, STACK, Finding, as_list, as_mapping, check_template, is_mapping

PLUGIN_NAME = "Preflight"
PLUGIN_VERSION = "1.0.0"


def _stacks(template_path: Path) -> dict[str, Mapping[str, Any]]:
    """Template file name -> the stack's manifest artifact (the assembly is written before validation runs)."""
    manifest = template_path.parent / "manifest.json"
    if not manifest.is_file():
        return {}
    artifacts = as_mapping(as_mapping(json.loads(manifest.read_text())).get("artifacts"))
    return {a["properties"]["templateFile"]: {"id": artifact_id, **a} for artifact_id, a in artifacts.items()
            if is_mapping(a) and a.get("type") == "aws:cloudformation:stack"}


def _construct_paths(directory: Path, artifact: Mapping[str, Any]) -> dict[str, str]:
    """Logical id -> construct path, from the stack's metadata (also when templates carry no path metadata)."""
    metadata = dict(as_mapping(artifact.get("metadata")))
    if isinstance(extra := artifact.get("additionalMetadataFile"), str) and extra:
        metadata.update(as_mapping(json.loads((directory / extra).read_text())))
    return {data: path.lstrip("/") for path, entries in metadata.items() for entry in as_list(entries)
            if is_mapping(entry) and entry.get("type") == "aws:cdk:logicalId" and isinstance(data := entry.get("data"), str)}


def _violation(finding: Finding, template_path: str) -> PolicyViolation:
    resource = PolicyViolatingResource(construct_path=finding.resource.path, locations=[]) \
        if finding.resource.type == STACK else PolicyViolatingResource(
            resource_logical_id=finding.resource.id, template_path=template_path,
            locations=[finding.violation.location or "Properties"])
    return PolicyViolation(
        rule_name=finding.rule.id,
        description=finding.line(),
        fix=finding.violation.fix,
        severity=finding.rule.severity,
        rule_metadata={"source": finding.rule.source},
        violating_resources=[resource],
    )


@jsii.implements(IPolicyValidationPlugin)
class Preflight:
    """AWS's deploy-time rules over every template of the app; ``skip`` leaves rules out by id."""

    def __init__(self, *, skip: Iterable[str] = ()) -> None:
        unknown = sorted(set(skip) - set(RULES))
        if unknown:
            raise ValueError(f"skip={unknown}: no such preflight rule; known rules: {', '.join(RULES)}")
        self._rules = [r for r in RULES.values() if r.id not in set(skip)]

    @property
    def name(self) -> str:
        return PLUGIN_NAME

    @property
    def version(self) -> str:
        return PLUGIN_VERSION

    @property
    def rule_ids(self) -> list[str]:
        return [r.id for r in self._rules]

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        violations: list[PolicyViolation] = []
        for stack in context.stack_templates:
            path = Path(stack.template_path)
            artifact = _stacks(path).get(path.name, {})
            name = as_mapping(artifact.get("properties")).get("stackName") or artifact.get("id") or \
                path.name.removesuffix(".template.json")
            findings = check_template(json.loads(path.read_text()), name=name, region=stack.region,
                                      stack_path=stack.stack_construct_path, rules=self._rules,
                                      paths=_construct_paths(path.parent, artifact))
            violations += [_violation(f, stack.template_path) for f in findings]
        return PolicyValidationPluginReport(success=not any(v.severity == "error" for v in violations),
                                            violations=violations)
