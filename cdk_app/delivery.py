"""GitHub Actions deploys through OIDC: one IAM role per environment, and nothing more than CDK needs.

:class:`GitHubDeployRoles` makes (or takes) the account's GitHub OIDC provider and, for each environment,
a role that only a job of that GitHub *environment* in one repository can assume (the token's ``sub`` is
``repo:<owner>/<repo>:environment:<env>``, so a branch, a fork or another workflow gets nothing; prod's
required reviewers gate the token itself). Each role may only assume the CDK bootstrap roles of its own
account and region (deploy, file and image publishing, lookup): what a deploy may change is decided by
``cdk bootstrap``'s execution policy, not here. An optional pull-request role may assume the lookup role
alone: enough for ``cdk diff`` to read the deployed templates, not to change anything.

Deploy it once per account with the delivery app in this module (see docs/delivery.md)::

    npx cdk deploy --app ".venv/bin/python -m cdk_app.delivery" -c github_repository=owner/repo
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, cast

from aws_cdk import App, Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
#: The audience aws-actions/configure-aws-credentials asks GitHub for.
GITHUB_AUDIENCE = "sts.amazonaws.com"
#: ``cdk bootstrap``'s default qualifier (``--qualifier`` changes it; so does ``@aws-cdk/core:bootstrapQualifier``).
DEFAULT_QUALIFIER = "hnb659fds"
#: What ``cdk deploy`` assumes: the deploy role (CloudFormation), the asset publishing roles, the lookup role.
DEPLOY_BOOTSTRAP_ROLES = ("deploy-role", "file-publishing-role", "image-publishing-role", "lookup-role")
#: What ``cdk diff --no-change-set`` assumes: the lookup role reads deployed templates, read-only.
DIFF_BOOTSTRAP_ROLES = ("lookup-role",)

REPOSITORY_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
#: GitHub environment names: no wildcard or separator that would widen the ``sub`` match.
ENVIRONMENT_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
QUALIFIER_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,10}$")


class DeliveryError(ValueError):
    """A delivery prop or context value that cannot work; the message names it and the fix."""


def bootstrap_role_arn(kind: str, qualifier: str, region: str) -> str:
    """The ARN ``cdk bootstrap`` gives its ``kind`` role in this stack's account, in ``region``."""
    return (f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/"
            f"cdk-{qualifier}-{kind}-{Aws.ACCOUNT_ID}-{region}")


class GitHubDeployRoles(Construct):
    """GitHub OIDC provider + one deploy role per environment (+ a read-only role for pull-request diffs).

    :param repository: ``owner/name`` of the GitHub repository whose workflows deploy.
    :param environments: the GitHub environment names, one role each (e.g. ``["dev", "staging", "prod"]``).
        Give prod required reviewers in the repository's settings: the job waits for them before GitHub
        issues the token this role trusts.
    :param provider: an existing GitHub OIDC provider (an account holds one per URL). @default a new one
    :param pull_request_diff: also make the role pull-request jobs use for ``cdk diff``. @default True
    :param qualifier: the ``cdk bootstrap`` qualifier. @default ``hnb659fds``
    :param regions: the regions the roles deploy to (bootstrapped there). @default this stack's region
    :param max_session_duration: how long one job's credentials last. @default 1 hour

    Example::

        roles = GitHubDeployRoles(stack, "GitHub", repository="my-org/my-service",
                                  environments=["dev", "staging", "prod"])
        roles.roles["prod"]  # the role the prod job assumes (its ARN is the environment's AWS_DEPLOY_ROLE_ARN)
    """

    def __init__(self, scope: Construct, construct_id: str, *, repository: str, environments: Sequence[str],
                 provider: iam.IOidcProvider | None = None, pull_request_diff: bool = True,
                 qualifier: str = DEFAULT_QUALIFIER, regions: Sequence[str] | None = None,
                 max_session_duration: Duration = Duration.hours(1)) -> None:
        super().__init__(scope, construct_id)
        validate(repository=repository, environments=environments, qualifier=qualifier)
        self.repository = repository
        self.qualifier = qualifier
        self.regions = list(regions) if regions else [Aws.REGION]
        self.max_session_duration = max_session_duration
        #: The OIDC provider the roles trust (created here unless one was given).
        self.provider: iam.IOidcProvider = provider or iam.OidcProviderNative(
            self, "Provider", url=GITHUB_OIDC_URL, client_ids=[GITHUB_AUDIENCE])
        #: Environment name → the role its deploy job assumes.
        self.roles: dict[str, iam.Role] = {
            name: self._role(f"Deploy-{name}", f"repo:{repository}:environment:{name}", DEPLOY_BOOTSTRAP_ROLES,
                             f"GitHub Actions deploys of {repository} to the {name} environment")
            for name in environments}
        #: The role pull-request jobs assume for ``cdk diff`` (None when ``pull_request_diff`` is False).
        self.diff_role: iam.Role | None = self._role(
            "PullRequestDiff", f"repo:{repository}:pull_request", DIFF_BOOTSTRAP_ROLES,
            f"cdk diff on pull requests of {repository} (lookup role only)") if pull_request_diff else None

    def _role(self, construct_id: str, subject: str, bootstrap_roles: Sequence[str], description: str) -> iam.Role:
        principal = iam.WebIdentityPrincipal(self.provider.oidc_provider_arn, conditions={
            "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": GITHUB_AUDIENCE, f"{GITHUB_OIDC_HOST}:sub": subject}})
        # cast: jsii's PrincipalBase names add_to_principal_policy's parameter `_statement`, IPrincipal `statement`,
        # so pyright sees no IPrincipal in any principal class (the binding's naming, not a wrong type).
        role = iam.Role(self, construct_id, assumed_by=cast(iam.IPrincipal, principal), description=description[:1000],
                        max_session_duration=self.max_session_duration)
        role.add_to_policy(iam.PolicyStatement(
            sid="AssumeCdkBootstrapRoles", actions=["sts:AssumeRole"],
            resources=[bootstrap_role_arn(kind, self.qualifier, region)
                       for region in self.regions for kind in bootstrap_roles]))
        return role


def validate(*, repository: str, environments: Sequence[str], qualifier: str) -> None:
    """Refuse what would make a role nobody can assume, or one that too many can."""
    if not REPOSITORY_PATTERN.match(repository or ""):
        raise DeliveryError(f"repository={repository!r} is not 'owner/name'; pass the GitHub repository, "
                            "e.g. -c github_repository=my-org/my-service")
    if not environments:
        raise DeliveryError("environments is empty; name at least one GitHub environment, e.g. dev")
    for name in environments:
        if not ENVIRONMENT_PATTERN.match(name):
            raise DeliveryError(f"environment {name!r} may only hold letters, digits, '.', '_' and '-' "
                                "(a wildcard would let other environments' jobs deploy)")
    if len(set(environments)) != len(environments):
        raise DeliveryError(f"environments {list(environments)} name one environment twice")
    if not QUALIFIER_PATTERN.match(qualifier):
        raise DeliveryError(f"qualifier={qualifier!r} is not a cdk bootstrap qualifier (up to 10 letters, digits, "
                            "'_' or '-'); use the one given to `cdk bootstrap --qualifier` (default hnb659fds)")


class DeliveryStack(Stack):
    """The delivery app's one stack: :class:`GitHubDeployRoles`, with each role's ARN as an output.

    :param repository: ``owner/name`` of the GitHub repository whose workflows deploy.
    :param environments: the GitHub environment names, one deploy role each.
    :param provider_arn: the ARN of the account's GitHub OIDC provider, if one exists. @default a new provider
    :param qualifier: the ``cdk bootstrap`` qualifier. @default ``hnb659fds``
    :param kwargs: any other ``aws_cdk.Stack`` prop (``env``, ``description``, ...).

    Example::

        DeliveryStack(stack.node.root, "Delivery", repository="my-org/my-service", environments=["dev", "prod"])
    """

    def __init__(self, scope: Construct, construct_id: str, *, repository: str, environments: Sequence[str],
                 provider_arn: str | None = None, qualifier: str = DEFAULT_QUALIFIER, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        provider = iam.OidcProviderNative.from_oidc_provider_arn(self, "Provider", provider_arn) \
            if provider_arn else None
        self.roles = GitHubDeployRoles(self, "GitHub", repository=repository, environments=environments,
                                       provider=provider, qualifier=qualifier)
        for name, role in self.roles.roles.items():
            CfnOutput(self, f"DeployRoleArn{pascal(name)}", value=role.role_arn,
                      description=f"vars.AWS_DEPLOY_ROLE_ARN of the GitHub environment {name}")
        if self.roles.diff_role is not None:
            CfnOutput(self, "DiffRoleArn", value=self.roles.diff_role.role_arn,
                      description="vars.AWS_DIFF_ROLE_ARN of the repository (cdk diff on pull requests)")


def pascal(name: str) -> str:
    """``name`` in PascalCase, for an output's logical id (``"my-env"`` → ``"MyEnv"``)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))


def settings_from_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """The delivery app's settings from CDK context (``-c key=value`` or cdk.json)."""
    repository = context.get("github_repository")
    if not repository:
        raise DeliveryError("github_repository is not set; pass -c github_repository=<owner>/<name>")
    environments: Any = context.get("delivery_environments")
    if environments is None:
        configured: dict[str, Any] = context.get("environments") or {}
        environments = list(configured.keys())
    elif isinstance(environments, str):
        environments = [name.strip() for name in environments.split(",") if name.strip()]
    qualifier = context.get("cdk_qualifier") or context.get("@aws-cdk/core:bootstrapQualifier") or DEFAULT_QUALIFIER
    return {"repository": repository, "environments": list(environments), "qualifier": qualifier,
            "provider_arn": context.get("github_oidc_provider_arn") or None,
            "stack_name": f"{context.get('app_name') or 'fastapi-lambda'}-delivery"}


def build_delivery(app: App) -> DeliveryStack:
    """The delivery app: one :class:`DeliveryStack` from the app's context."""
    keys = ("github_repository", "delivery_environments", "environments", "cdk_qualifier",
            "@aws-cdk/core:bootstrapQualifier", "github_oidc_provider_arn", "app_name")
    settings = settings_from_context({key: app.node.try_get_context(key) for key in keys})
    stack_name = settings.pop("stack_name")
    return DeliveryStack(app, stack_name, description="GitHub Actions OIDC deploy roles", **settings)


def main() -> None:
    from cdk_app.compliance import add_compliance_checks

    app = App()
    add_compliance_checks(app)
    try:
        build_delivery(app)
    except DeliveryError as error:
        sys.exit(f"delivery: {error}")
    app.synth()


if __name__ == "__main__":
    main()
