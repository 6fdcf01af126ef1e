"""The deploy preflight: what AWS would refuse at ``cdk deploy`` fails ``cdk synth`` instead.

A template that synthesizes is not a template that deploys: CloudFormation's schema (what
cfn-lint checks) stops where each service's own rules begin. Every rule here encodes one of
those service rules (from AWS's documentation or a public CREATE_FAILED / UPDATE_ROLLBACK
report, recorded beside the rule) and runs over every resource of every synthesized template,
including resources the constructs did not make.

- :class:`Preflight` is the CDK validation plugin (``Validations.of(app).add_plugins(Preflight())``;
  ``cdk_app.compliance.add_compliance_checks`` adds it).
- :func:`check_template` runs the rules over a template dict, without CDK (tests, other tools).
- :data:`RULES` holds every rule: id, resource types, the AWS message it prevents, its source.

Add a rule in the module of its service: a function decorated with :func:`rule` that yields a
:class:`Violation` per problem, reading the template through the engine's typed accessors
(``Resource.get``/``.mapping``/``.mappings``, ``as_mapping``, ``mappings``), and a violating case in
``tests/infra/test_preflight.py``.
"""

# pyright: reportUnusedImport=false
# (the modules below are imported for their side effect: each registers its rules)

from __future__ import annotations

from typing import TYPE_CHECKING

from cdk_app.preflight import (  # noqa: F401  (each module registers its rules)
    apigateway,
    cache,
    cognito,
    edge,
    functions,
    lifecycle,
    messaging,
    monitoring,
    names,
    network,
    releases,
    scaling,
    storage,
    waf,
)
from cdk_app.preflight.engine import RULES, Finding, Rule, Violation, check_template, rule

if TYPE_CHECKING:  # for readers and type checkers; at run time __getattr__ below loads it on first use
    from cdk_app.preflight.plugin import Preflight

__all__ = ["RULES", "Finding", "Preflight", "Rule", "Violation", "check_template", "rule"]


def __getattr__(name: str) -> object:
    # The plugin imports aws_cdk (jsii); the rules do not, so a report or a test of rules stays fast.
    if name == "Preflight":
        from cdk_app.preflight.plugin import Preflight

        return Preflight
    raise AttributeError(f"module 'cdk_app.preflight' has no attribute {name!r}")
