"""Accepting a scanner's finding on one resource, with its reason: what every construct uses for its own.

A construct that knowingly makes something a rule pack reports (a log group without a customer
key, a policy with an unavoidable ``*``) accepts that finding right where it makes the resource,
on that resource alone (the narrowest scope), with a reason a reviewer can check:

- :func:`acknowledge`: a cdk-nag rule (``AwsSolutions-…``, ``Serverless-…``) or a preflight
  warning, through CDK's validation acknowledgements;
- :func:`skip_checkov`: a checkov check, in the resource's own template metadata
  (``Metadata.checkov.skip``), where checkov reads it and a reviewer of the template sees it.

So the constructs stay clean when used in other apps too, and a finding on anything a user adds
is still reported. Which packs run is :mod:`cdk_app.compliance`'s business, not this module's.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct

from cdk_app.report import MIN_REASON_WORDS  # the gate that reads the reasons sets how long they must be

#: The template metadata key checkov reads skips from.
CHECKOV_METADATA = "checkov"


def _given(scope: IConstruct | None, rule: str) -> IConstruct:
    """``scope``, which callers usually pass as ``construct.node.default_child`` (typed optional by CDK)."""
    if scope is None:
        raise TypeError(f"no construct to accept {rule} on: the construct passed has no default child; pass the "
                        "resource itself")
    return scope


def acknowledge(scope: IConstruct | None, rule: str, reason: str, *, pack: str = "AwsSolutions") -> None:
    """Accept cdk-nag's ``<pack>-<rule>`` on ``scope`` and what it contains: pass the resource itself."""
    Validations.of(_given(scope, rule)).acknowledge(Acknowledgment(id=f"{pack}-{rule}", reason=reason))


def acknowledge_serverless(scope: IConstruct | None, rule: str, reason: str) -> None:
    """Accept cdk-nag's ``Serverless-<rule>`` on ``scope``: :func:`acknowledge` for the Serverless pack."""
    acknowledge(scope, rule, reason, pack="Serverless")


def acknowledge_preflight(scope: IConstruct | None, rule: str, reason: str) -> None:
    """Accept a warning of the deploy preflight (:mod:`cdk_app.preflight`) on ``scope``."""
    Validations.of(_given(scope, rule)).acknowledge(Acknowledgment(id=f"Preflight::{rule}", reason=reason))


def skip_checkov(resource: IConstruct | None, check: str, reason: str) -> None:
    """Accept checkov's ``check`` (``CKV_AWS_…``) on one resource, with the reason, in that resource's own
    template metadata, where checkov reads it. ``resource`` is the CloudFormation resource or an L2
    construct (its default child)."""
    resource = _given(resource, check)
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource to carry a checkov skip; pass one")
    if len(reason.split()) < MIN_REASON_WORDS:
        raise ValueError(f"the reason for skipping {check} on {cfn.node.path} is too thin ({reason!r}): say why "
                         "the finding does not apply, in a sentence")
    entry = dict(cfn.get_metadata(CHECKOV_METADATA) or {})
    skips = [s for s in entry.get("skip", []) if s["id"] != check]
    cfn.add_metadata(CHECKOV_METADATA, {**entry, "skip": [*skips, {"id": check, "comment": reason}]})


def managed_policy_finding(name: str) -> str:
    """How cdk-nag's IAM4 names an AWS-managed policy in a finding id."""
    return f"IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{name}]"


def as_finding(stack: Stack, value: str) -> str:
    """How cdk-nag writes a (possibly tokenized) ARN in a finding id: pseudo parameters as <AWS::Region>."""
    resolved = stack.resolve(value)
    if isinstance(resolved, str):
        return resolved
    return "".join(part if isinstance(part, str) else f"<{part['Ref']}>" for part in resolved["Fn::Join"][1])


# --- reasons shared by several constructs -----------------------------------------------------

LOG_GROUP_KEY = (
    "CloudWatch Logs encrypts every log group at rest with keys it manages; a customer-managed key would add a "
    "key policy to maintain and a cost per request, while who may read the logs is decided by IAM either way."
)
SECRET_KEY = (
    "Secrets Manager encrypts the secret with the account's aws/secretsmanager key; a customer-managed key "
    "matters for sharing a secret across accounts, which this one never is: only the functions granted it read it."
)
SQS_MANAGED_ENCRYPTION = (
    "False positive: the queue is encrypted at rest with SQS-managed keys (SSE-SQS, SqsManagedSseEnabled), which "
    "checkov does not recognise (it looks for KmsMasterKeyId only); SNS, S3 and EventBridge can send to it "
    "without a key policy."
)
CDK_HANDLER = (
    "This is aws-cdk-lib's own deploy-time handler: CloudFormation invokes it only during deploys, synchronously "
    "as a custom resource, with nothing to keep on failure (the deploy fails and rolls back), no VPC resource to "
    "reach and no concurrency worth reserving; CDK offers no way to configure it."
)


def skip_cdk_handler(stack: Stack, handler_id: str) -> None:
    """Skip the function checks on one of aws-cdk-lib's singleton deploy-time handlers (when the stack has it)."""
    handler = stack.node.try_find_child(handler_id)
    if handler is None:
        return
    function = handler.node.default_child or handler.node.try_find_child("Handler")
    for check in ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"):  # concurrency, dead-letter queue, VPC
        skip_checkov(function, check, CDK_HANDLER)
