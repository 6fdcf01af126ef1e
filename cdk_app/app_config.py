"""Configuration and secrets: SSM parameters under ``/<app>/<env>/`` and Secrets Manager secrets.

Values never reach a function's environment or a template: functions get the parameter
path and the secrets' names, and read them (cached) at run time with least-privilege
grants — the path only, the exact secret ARNs, and ``kms:Decrypt`` only where existing
SecureString parameters need it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

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

from cdk_app import compliance
from cdk_app.function import ServiceFunction


class AppConfig(Construct):
    """Parameters and secrets of one environment, and the grants to read them.

    ``parameters`` become SSM String parameters ``<path><name>``; ``secrets`` are generated
    Secrets Manager secrets (rotation-ready: add a rotation schedule with your rotation
    function); ``secure_parameters`` name existing SecureString parameters (CloudFormation
    cannot create those). :meth:`grant_read` gives a function exactly what it needs.
    """

    def __init__(self, scope: Construct, id: str, *, path: str, parameters: Mapping[str, str] | None = None,
                 secrets: Sequence[str] = (), secure_parameters: Mapping[str, str] | None = None,
                 max_age: Duration = Duration.minutes(5),
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN) -> None:
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
        self.secure_parameters = dict(secure_parameters or {})
        for name, parameter in self.secure_parameters.items():
            if not parameter.startswith("/"):
                raise ValueError(f"secure_parameters[{name!r}]={parameter!r} must be a parameter name starting with /")
        compliance.acknowledge_app_config(self)

    def parameter_arn(self, name: str) -> str:
        return Stack.of(self).format_arn(service="ssm", resource="parameter", resource_name=name.lstrip("/"),
                                         arn_format=ArnFormat.SLASH_RESOURCE_NAME)

    def _decrypt_policy(self, function: ServiceFunction) -> iam.Policy:
        """``kms:Decrypt`` for the SecureString parameters, in a policy of its own.

        The values are encrypted with the account's aws/ssm key or a key of the parameter owner's, which this
        app cannot name: the resource is ``*`` and the condition is the limit. Alone in its policy, the
        acknowledgement of that ``*`` covers no later statement.
        """
        policy = iam.Policy(self, f"Decrypt{function.node.id}", statements=[iam.PolicyStatement(
            actions=["kms:Decrypt"], resources=["*"],
            # Only through SSM in this region, i.e. to read a SecureString parameter.
            conditions={"StringEquals": {"kms:ViaService": f"ssm.{Stack.of(self).region}.amazonaws.com"}})])
        function.role.attach_inline_policy(policy)
        return policy

    def grant_read(self, function: ServiceFunction) -> iam.Policy:
        """Read the path, the exact secrets and secure parameters; names by environment variable."""
        statements = [iam.PolicyStatement(
            actions=["ssm:GetParametersByPath", "ssm:GetParameters", "ssm:GetParameter"],
            # GetParametersByPath is authorized on the path itself, the others on the parameters below it.
            resources=[self.parameter_arn(self.path.rstrip("/")), self.parameter_arn(f"{self.path}*")])]
        if self.secrets:
            statements.append(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"],
                                                  resources=[s.secret_arn for s in self.secrets.values()]))
        if self.secure_parameters:
            statements.append(iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[
                self.parameter_arn(name) for name in self.secure_parameters.values()]))
        policy = iam.Policy(self, f"Read{function.node.id}", statements=statements)
        function.role.attach_inline_policy(policy)
        decrypt = self._decrypt_policy(function) if self.secure_parameters else None
        compliance.acknowledge_config_reader(self, policy, decrypt)
        function.add_environment(CONFIG_PATH_VARIABLE, self.path)
        function.add_environment(CONFIG_MAX_AGE_VARIABLE, str(int(self.max_age.to_seconds())))
        if self.secrets:
            function.add_environment(SECRETS_VARIABLE, Stack.of(self).to_json_string(
                {name: s.secret_name for name, s in self.secrets.items()}))
        if self.secure_parameters:
            function.add_environment(SECURE_PARAMETERS_VARIABLE, json.dumps(self.secure_parameters))
        return policy
