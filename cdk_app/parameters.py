"""The app's parameters and secrets: SSM parameters under ``/<app>/<env>/`` and Secrets Manager secrets.

Values never reach a function's environment or a template: functions get the parameter
path and the secrets' names (:meth:`AppParameters.configure`), and read them (cached) at run
time with ``fastapi_lambda.parameters``, under least-privilege grants
(:meth:`AppParameters.grant_read`) — the path only, the exact secret ARNs, and ``kms:Decrypt``
only where existing SecureString parameters need it. ``config`` in ``cdk.json`` sets them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jsii
from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ssm as ssm
from constructs import Construct
from fastapi_lambda.constants import (
    CONFIG_MAX_AGE_VARIABLE,
    CONFIG_PATH_VARIABLE,
    SECRETS_VARIABLE,
    SECURE_PARAMETERS_VARIABLE,
)

from cdk_app.cdk_values import removal_policy
from cdk_app.findings import SECRET_KEY, acknowledge, as_finding, skip_checkov
from cdk_app.function import ServiceFunction
from cdk_app.settings import DEFAULTS


@jsii.implements(iam.IPrincipal)
class _IntoPolicy:
    """A function's role, as a grant sees it, with the statements going into ``policy`` (a policy of their own,
    whose acknowledgements then cover nothing added to the role later) instead of the role's default policy."""

    def __init__(self, role: iam.IRole | iam.Role, policy: iam.Policy) -> None:
        self._role, self._policy = role, policy

    @property
    def grant_principal(self) -> iam.IPrincipal:
        return self

    @property
    def assume_role_action(self) -> str:
        return self._role.assume_role_action

    @property
    def policy_fragment(self) -> iam.PrincipalPolicyFragment:
        return self._role.policy_fragment

    @property
    def principal_account(self) -> str | None:
        return self._role.principal_account

    def add_to_principal_policy(self, statement: iam.PolicyStatement) -> iam.AddToPrincipalPolicyResult:
        self._policy.add_statements(statement)
        return iam.AddToPrincipalPolicyResult(statement_added=True, policy_dependable=self._policy)


class AppParameters(Construct):
    """Parameters and secrets of one environment, and the grants to read them.

    :meth:`grant_read` gives a function exactly what it needs (in a policy of its own),
    :meth:`configure` the names it reads them by; the values never reach an environment
    variable or a template. Attributes: :attr:`parameters` and :attr:`secrets` (by name).

    :param path: the parameters' path, ``/<app>/<env>/`` (leading and trailing slash; required).
    :param parameters: values of SSM String parameters created as ``<path><name>``. @default none
    :param secrets: names of Secrets Manager secrets generated as ``<app>/<env>/<name>`` (40 letters and digits,
        rotation-ready: add a rotation schedule with your rotation function). @default none
    :param secure_parameters: existing SecureString parameters (CloudFormation cannot create those), by the name
        the app reads them as, e.g. ``{"partner_key": "/orders/prod/partner-key"}``. @default none
    :param max_age: how long the function trusts a value it read before reading it again.
        @default ``DEFAULTS.config.max_age_seconds``
    :param removal_policy: of the secrets. @default ``DEFAULTS.removal_policy``

    Example::

        from aws_cdk import Duration
        from cdk_app.function import FastApiFunction
        from cdk_app.parameters import AppParameters

        config = AppParameters(stack, "Config", path="/orders/dev/", parameters={"greeting": "hello"},
                               secrets=["partner-token"], max_age=Duration.minutes(5))
        api = FastApiFunction(stack, "Api", source="lambda_src", app="service.main:create_app")
        config.grant_read(api)  # the path, the exact secrets, nothing else
        config.configure(api)  # the path and the secrets' names, never a value
    """

    def __init__(self, scope: Construct, id: str, *, path: str, parameters: Mapping[str, str] | None = None,
                 secrets: Sequence[str] = (), secure_parameters: Mapping[str, str] | None = None,
                 max_age: Duration = Duration.seconds(DEFAULTS.config.max_age_seconds),
                 removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy)) -> None:
        super().__init__(scope, id)
        if not (path.startswith("/") and path.endswith("/") and len(path) > 2):
            raise ValueError(f"path={path!r} must look like '/<app>/<env>/' (a leading and a trailing slash)")
        self.path = path
        self.max_age = max_age
        self.parameters = {
            name: ssm.StringParameter(self, f"Parameter-{name}", parameter_name=f"{path}{name}", string_value=value,
                                      description=f"{name} ({path})")
            for name, value in (parameters or {}).items()}
        self.secrets = {
            name: secretsmanager.Secret(
                self, f"Secret-{name}", secret_name=f"{path.strip('/')}/{name}", removal_policy=removal_policy,
                generate_secret_string=secretsmanager.SecretStringGenerator(password_length=40,
                                                                            exclude_punctuation=True),
                description=f"{name} ({path}); generated, rotation-ready")
            for name in secrets}
        for secret in self.secrets.values():
            skip_checkov(secret, "CKV_AWS_149", SECRET_KEY)
            acknowledge(
                secret.node.default_child, "SMG4",
                "The secret is generated and rotation-ready; rotating it needs a rotation function that knows the "
                "system the secret unlocks, which the application owner adds with secret.add_rotation_schedule.",
            )
        self.secure_parameters = dict(secure_parameters or {})
        for name, parameter in self.secure_parameters.items():
            if not parameter.startswith("/"):
                raise ValueError(f"secure_parameters[{name!r}]={parameter!r} must be a parameter name starting with /")

    def parameter_arn(self, name: str) -> str:
        """The ARN of the parameter called ``name`` (a full name, ``/orders/dev/greeting``) in this stack's account
        and region."""
        return Stack.of(self).format_arn(service="ssm", resource="parameter", resource_name=name.lstrip("/"),
                                         arn_format=ArnFormat.SLASH_RESOURCE_NAME)

    def _decrypt(self, function: ServiceFunction) -> iam.Grant:
        """``kms:Decrypt`` for the SecureString parameters, in a policy of its own.

        The values are encrypted with the account's aws/ssm key or a key of the parameter owner's, which this
        app cannot name: the resource is ``*`` and the condition is the limit. Alone in its policy, the
        acknowledgement of that ``*`` covers no later statement.
        """
        stack = Stack.of(self)
        policy = iam.Policy(self, f"Decrypt{function.node.id}")
        function.role.attach_inline_policy(policy)
        # Only through SSM in this region, i.e. to read a SecureString parameter.
        grant = iam.Grant.add_to_principal(
            grantee=_IntoPolicy(function.role, policy), actions=["kms:Decrypt"], resource_arns=["*"],
            conditions={"StringEquals": {"kms:ViaService": f"ssm.{stack.region}.amazonaws.com"}})
        # Only while every statement of that policy is conditioned on SSM: without the condition, '*' is reported.
        statements: list[dict[str, Any]] = stack.resolve(policy.document)["Statement"]
        if all("kms:ViaService" in statement.get("Condition", {}).get("StringEquals", {}) for statement in statements):
            acknowledge(
                policy.node.default_child, "IAM5[Resource::*]",
                f"kms:Decrypt is limited by kms:ViaService to SSM in {stack.region}: it decrypts only SecureString "
                "parameters the function may read, with whichever key encrypted them. This policy holds only that "
                "statement.",
            )
        return grant

    def grant_read(self, function: ServiceFunction) -> iam.Grant:
        """Read the path, the exact secrets and secure parameters, in a policy of the function's own."""
        policy = iam.Policy(self, f"Read{function.node.id}")
        function.role.attach_inline_policy(policy)
        into = _IntoPolicy(function.role, policy)
        # GetParametersByPath is authorized on the path itself, the others on the parameters below it.
        grant = iam.Grant.add_to_principal(
            grantee=into, actions=["ssm:GetParametersByPath", "ssm:GetParameters", "ssm:GetParameter"],
            resource_arns=[self.parameter_arn(self.path.rstrip("/")), self.parameter_arn(f"{self.path}*")])
        if self.secrets:
            grant = grant.combine(iam.Grant.add_to_principal(
                grantee=into, actions=["secretsmanager:GetSecretValue"],
                resource_arns=[s.secret_arn for s in self.secrets.values()]))
        if self.secure_parameters:
            grant = grant.combine(iam.Grant.add_to_principal(
                grantee=into, actions=["ssm:GetParameter"],
                resource_arns=[self.parameter_arn(name) for name in self.secure_parameters.values()]))
        acknowledge(
            policy.node.default_child,
            f"IAM5[Resource::{as_finding(Stack.of(self), self.parameter_arn(self.path + '*'))}]",
            f"The function reads every parameter under its own path {self.path} (read by path, cached); "
            "the path is the narrowest scope that lets parameters be added without a deploy.",
        )
        return grant.combine(self._decrypt(function)) if self.secure_parameters else grant

    def environment(self) -> Mapping[str, str]:
        """What ``fastapi_lambda.parameters`` reads: the path, how long a value is trusted, the secrets' names."""
        variables = {CONFIG_PATH_VARIABLE: self.path, CONFIG_MAX_AGE_VARIABLE: str(int(self.max_age.to_seconds()))}
        if self.secrets:
            variables[SECRETS_VARIABLE] = Stack.of(self).to_json_string(
                {name: s.secret_name for name, s in self.secrets.items()})
        if self.secure_parameters:
            variables[SECURE_PARAMETERS_VARIABLE] = json.dumps(self.secure_parameters)
        return variables

    def configure(self, function: ServiceFunction) -> ServiceFunction:
        """Give ``function`` the names it reads the values by (:meth:`environment`), never a value."""
        return function.add_environment_variables(self.environment())
