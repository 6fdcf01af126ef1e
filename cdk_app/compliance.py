"""The scanners' rule packs on every stack of an app: cdk-nag's and the deploy preflight.

cdk-nag 3.x runs two rule packs, AWS Solutions and Serverless, as CDK validation plugins:
findings fail ``cdk synth`` and are written to ``cdk.out/validation-report.json``. The deploy
preflight (:mod:`cdk_app.preflight`) runs beside them. checkov reads the synthesized templates
afterwards (``make synth``, :mod:`cdk_app.report`).

What a construct accepts of their findings it records itself, on the resource concerned and with
its reason (:mod:`cdk_app.findings`): this module knows no construct.
"""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from cdk_app.preflight.plugin import Preflight

#: The cdk-nag packs that run at synth, by the prefix of their rule ids.
NAG_PACKS = {"AwsSolutions": AwsSolutionsChecks, "Serverless": ServerlessChecks}


def add_compliance_checks(app: App) -> None:
    """Run cdk-nag's AWS Solutions and Serverless rule packs and the deploy preflight on every stack of ``app``
    at synth."""
    Validations.of(app).add_plugins(*(pack(app) for pack in NAG_PACKS.values()), Preflight())
