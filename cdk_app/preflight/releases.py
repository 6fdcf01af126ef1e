"""Releases and packaging: CodeDeploy on Lambda aliases (deployment groups, lifecycle hooks) and container images."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cdk_app.preflight.engine import (
    Resource,
    Template,
    Violation,
    allows,
    as_list,
    as_mapping,
    literal_text,
    referenced_ids,
    rule,
    statements,
    target_id,
)
from cdk_app.preflight.functions import ALIAS, FUNCTION, function_of

DEPLOYMENT_GROUP = "AWS::CodeDeploy::DeploymentGroup"
ROLE, POLICY = "AWS::IAM::Role", "AWS::IAM::Policy"
#: What CloudFormation hands to CodeDeploy instead of updating an alias itself.
ALIAS_UPDATE = "CodeDeployLambdaAliasUpdate"
HOOKS = ("BeforeAllowTrafficHook", "AfterAllowTrafficHook")
#: CodeDeploy's quota of CloudWatch alarms per deployment group.
MAX_ALARMS = 10
#: AWS's managed policies for CodeDeploy's Lambda role: they allow invoking only functions named CodeDeployHook_*.
HOOK_POLICIES = ("AWSCodeDeployRoleForLambda", "AWSCodeDeployRoleForLambdaLimited")
HOOK_PREFIX = "CodeDeployHook_"
_QUOTAS = "https://docs.aws.amazon.com/codedeploy/latest/userguide/limits.html"
_HOOKS_DOCS = "https://docs.aws.amazon.com/codedeploy/latest/userguide/reference-appspec-file-structure-hooks.html" \
              "#appspec-hooks-lambda"
_IMAGES_DOCS = "https://docs.aws.amazon.com/lambda/latest/dg/images-create.html"


def _alias_update(alias: Resource) -> Mapping[str, Any]:
    return as_mapping(as_mapping(alias.update_policy).get(ALIAS_UPDATE))


def _hooks(alias: Resource, template: Template) -> Iterator[tuple[str, Resource]]:
    """(lifecycle event, hook function) for each hook of the alias's CodeDeploy update that is in the template."""
    for event in HOOKS:
        hook = template.target(_alias_update(alias).get(event), FUNCTION)
        if hook is not None:
            yield event, hook


def role_statements(role: Resource, template: Template) -> list[Mapping[str, Any]] | None:
    """Every statement the template gives ``role`` (inline and attached policies); None when the role also has
    managed policies of its own, whose statements the template does not show."""
    found = [s for p in role.mappings("Policies") for s in statements(p.get("PolicyDocument"))]
    for policy in template.of_type(POLICY):
        if any(target_id(r) == role.id for r in as_list(policy.get("Roles"))):
            found += statements(policy.get("PolicyDocument"))
    return found


def _managed(role: Resource) -> list[str]:
    return [literal_text(arn) or "" for arn in as_list(role.get("ManagedPolicyArns"))]


def _allows_on(statement: Mapping[str, Any], action: str, resource: Resource) -> bool:
    resources = as_list(statement.get("Resource"))
    return allows(statement, action) and ("*" in resources or resource.id in referenced_ids(resources))


@rule("CODEDEPLOY-ALARMS", DEPLOYMENT_GROUP,
      message='AlarmsLimitExceededException: "The maximum number of alarms for a deployment group (10) was exceeded"',
      source=_QUOTAS)
def alarm_count(resource: Resource, template: Template) -> Iterator[Violation]:
    """A deployment group watches at most 10 CloudWatch alarms."""
    alarms = as_list(resource.get("AlarmConfiguration", "Alarms"))
    if len(alarms) > MAX_ALARMS:
        yield Violation(f"{len(alarms)} alarms", f"keep the {MAX_ALARMS} that say most about a bad release (errors, "
                        "latency, 5xx), or combine several into a composite alarm", location="Properties/AlarmConfiguration")


@rule("CODEDEPLOY-HOOK-STATUS", ALIAS,
      message="the deployment waits for the hook's PutLifecycleEventHookExecutionStatus, which its role may not call, "
              "and fails when the hook times out (after an hour)",
      source=_HOOKS_DOCS)
def hook_reports(resource: Resource, template: Template) -> Iterator[Violation]:
    """A lifecycle hook's role may report its result to CodeDeploy."""
    for event, hook in _hooks(resource, template):
        role = template.target(hook.get("Role"), ROLE)
        found = role_statements(role, template) if role is not None and not _managed(role) else None
        if found is not None and not any(allows(s, "codedeploy:PutLifecycleEventHookExecutionStatus") for s in found):
            yield Violation(f"{event} {hook.path}: its role {role.id} may not call "  # type: ignore[union-attr]
                            "codedeploy:PutLifecycleEventHookExecutionStatus",
                            "allow it on the deployment group (LambdaDeploymentGroup.add_pre_hook/add_post_hook "
                            "grants it)", location=f"UpdatePolicy/{ALIAS_UPDATE}/{event}")


@rule("CODEDEPLOY-HOOK-INVOKE", ALIAS,
      message="CodeDeploy cannot invoke the lifecycle hook with the deployment group's role, and the deployment fails",
      source=f"{_HOOKS_DOCS}; https://docs.aws.amazon.com/aws-managed-policy/latest/reference/"
             "AWSCodeDeployRoleForLambdaLimited.html")
def hook_invocable(resource: Resource, template: Template) -> Iterator[Violation]:
    """The deployment group's role may invoke each hook: a grant on it, or a CodeDeployHook_* name under AWS's policy."""
    group = template.target(_alias_update(resource).get("DeploymentGroupName"), DEPLOYMENT_GROUP)
    role = template.target(group.get("ServiceRoleArn"), ROLE) if group is not None else None
    if role is None:
        return
    managed = _managed(role)
    granted = role_statements(role, template) or []
    for event, hook in _hooks(resource, template):
        name = literal_text(hook.get("FunctionName")) or ""
        by_name = name.startswith(HOOK_PREFIX) and any(arn.endswith(f"/{p}") for arn in managed for p in HOOK_POLICIES)
        if not by_name and not any(_allows_on(s, "lambda:InvokeFunction", hook) for s in granted):
            yield Violation(f"{event} {hook.path}: the role {role.id} of {group.id} "  # type: ignore[union-attr]
                            "may not invoke it", f"grant lambda:InvokeFunction on the hook to the role (CDK's add_pre_hook "
                            f"does), or name the hook {HOOK_PREFIX}... under {HOOK_POLICIES[1]}",
                            location=f"UpdatePolicy/{ALIAS_UPDATE}/{event}")


@rule("CODEDEPLOY-PROVISIONED-SCALING", ALIAS, severity="warning",
      message='InvalidParameterValueException: "Alias with weights can not be used with Provisioned Concurrency": while '
              "CodeDeploy shifts traffic, Lambda refuses changes to the alias's provisioned concurrency (scaling "
              "actions, or a new value deployed with new code)",
      source="https://github.com/hashicorp/terraform/issues/24957; "
             "https://docs.aws.amazon.com/lambda/latest/dg/configuring-alias-routing.html")
def provisioned_during_release(resource: Resource, template: Template) -> Iterator[Violation]:
    """Provisioned concurrency that scales on an alias CodeDeploy releases (a release freezes it)."""
    if not _alias_update(resource) or not resource.get("ProvisionedConcurrencyConfig"):
        return
    function = function_of(resource.get("FunctionName"), template)
    scaled = [t for t in template.of_type("AWS::ApplicationAutoScaling::ScalableTarget")
              if t.get("ServiceNamespace") == "lambda" and ({resource.id} | ({function.id} if function else set()))
              & referenced_ids(t.get("ResourceId"))]
    if scaled:
        yield Violation(f"provisioned concurrency scaled by {scaled[0].id} on an alias released by CodeDeploy",
                        "deploy changes of provisioned concurrency apart from code changes, keep release windows short, "
                        "and size the minimum for the peak of a release window")


@rule("LAMBDA-IMAGE-PACKAGE", FUNCTION,
      message="InvalidParameterValueException: \"Please don't provide Handler or Runtime or Layer when the intended "
              "function PackageType is Image.\"",
      source=_IMAGES_DOCS)
def image_package(resource: Resource, template: Template) -> Iterator[Violation]:
    """A container-image function has no handler, runtime or layers (the image and its command say them)."""
    if resource.get("PackageType") != "Image":
        return
    for key in ("Handler", "Runtime", "Layers"):
        if resource.get(key):
            yield Violation(f"{key} on a PackageType Image function", "remove it: the handler is "
                            "ImageConfig.Command, the runtime the base image, dependencies are inside the image",
                            location=f"Properties/{key}")


@rule("LAMBDA-IMAGE-SNAPSTART", FUNCTION, severity="warning",
      message="Lambda's SnapStart documentation lists container images as unsupported; AWS announced SnapStart for "
              "images on its Java 11+, Python 3.12+ and .NET 8+ base images in July 2026 (other images need the label "
              "com.amazonaws.lambda.feature.snapstart=Allow), so publishing a version fails where that is not yet "
              "available",
      source="https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html#snapstart-runtimes; "
             "https://github.com/aws/aws-cdk/pull/38680; https://github.com/serverless/serverless/issues/13834")
def image_snapstart(resource: Resource, template: Template) -> Iterator[Violation]:
    """SnapStart on a container image: new, and only for AWS's base images (or labelled ones)."""
    if resource.get("PackageType") == "Image" and resource.get("SnapStart", "ApplyOn") == "PublishedVersions":
        yield Violation("SnapStart on a PackageType Image function", "check the target region supports it and the image "
                        "is built on an AWS base image, or package it as a zip", location="Properties/SnapStart")
