"""Identity and edge protection: a Cognito user pool, its clients and authorizers, and a WAF.

:class:`UserPool` creates (or brings) the user pool, a browser app client (no secret,
authorization code with PKCE), optionally a machine client (client credentials) with a
resource server and its scopes, and the domain their OAuth flows need. It hands the gateway its
authorizer (:meth:`UserPool.http_authorizer` / :meth:`UserPool.rest_authorizer`) and the
functions the names they need to verify tokens themselves (:meth:`UserPool.configure`).
The defaults are the settings' (``auth`` in ``cdk.json``, :mod:`cdk_app.settings`).
:class:`WebFirewall` is a WAF web ACL (AWS managed common and known-bad-inputs rules and a
rate limit per IP, logged) for a REST API stage and, optionally, the user pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from aws_cdk import ArnFormat, Aws, Duration, Names, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct
from fastapi_lambda.constants import (
    AUTH_CLIENT_IDS_VARIABLE,
    AUTH_ISSUER_VARIABLE,
    AUTH_VERIFY_VARIABLE,
)

from cdk_app.cdk_values import log_retention, removal_policy
from cdk_app.findings import LOG_GROUP_KEY, acknowledge, skip_checkov
from cdk_app.settings import DEFAULTS
from cdk_app.settings.choices import Mfa, ThreatProtection
from cdk_app.settings.limits import COGNITO_PASSWORD_LENGTH, WAF_RATE_LIMITS
from cdk_app.settings.rules import domain_prefix_stem

if TYPE_CHECKING:
    from cdk_app.function import ServiceFunction

_IDENTITY = DEFAULTS.auth
_MFA = {"off": cognito.Mfa.OFF, "optional": cognito.Mfa.OPTIONAL, "required": cognito.Mfa.REQUIRED}
_THREAT = {"audit": cognito.StandardThreatProtectionMode.AUDIT_ONLY,
           "enforced": cognito.StandardThreatProtectionMode.FULL_FUNCTION}


class _PoolHttpAuthorizer(authorizers.HttpUserPoolAuthorizer):
    """A JWT authorizer of one of our pools, knowing the scopes every access token of that pool carries."""

    def __init__(self, id: str, pool: cognito.IUserPool, *, access_token_scopes: Sequence[str], **props: Any) -> None:
        super().__init__(id, pool, **props)
        self.access_token_scopes = tuple(access_token_scopes)


class _PoolRestAuthorizer(apigw.CognitoUserPoolsAuthorizer):
    """A REST Cognito authorizer of one of our pools, knowing the scopes every access token of that pool carries."""

    def __init__(self, scope: Construct, id: str, *, access_token_scopes: Sequence[str], **props: Any) -> None:
        super().__init__(scope, id, **props)
        self.access_token_scopes = tuple(access_token_scopes)


class UserPool(Construct):
    """A Cognito user pool with email sign-in, a strong password policy and its app clients.

    Creates (or brings) the pool, a browser client (:attr:`web_client`: no secret, authorization
    code with PKCE), optionally a machine client (:attr:`machine_client`: client credentials), the
    resource server of ``scopes`` (:attr:`resource_server`) and the domain their OAuth flows need
    (:attr:`domain`). The gateway takes :meth:`http_authorizer` or :meth:`rest_authorizer`; a function
    that verifies tokens itself takes :meth:`configure`.

    :param user_pool: an existing pool (nothing is created then); needs ``clients``. @default a new pool
    :param clients: the existing pool's app clients whose tokens the API accepts. @default none
    :param self_sign_up: anyone may sign up (else an administrator creates users).
        @default ``DEFAULTS.auth.self_sign_up``
    :param mfa: ``"off"``, ``"optional"`` or ``"required"`` (TOTP). @default ``DEFAULTS.auth.mfa``
    :param threat_protection: ``"off"``, ``"audit"`` or ``"enforced"``; on needs (and turns on) the Plus feature
        plan, billed per active user. @default ``DEFAULTS.auth.threat_protection``
    :param password_min_length: from 8 to 99; 12 or more is advised. @default ``DEFAULTS.auth.password_min_length``
    :param access_token_validity: from 5 minutes to a day. @default ``DEFAULTS.auth.access_token_minutes``
    :param id_token_validity: from 5 minutes to a day. @default ``DEFAULTS.auth.id_token_minutes``
    :param refresh_token_validity: from 1 to 3650 days. @default ``DEFAULTS.auth.refresh_token_days``
    :param callback_urls: where the browser client's sign-in may return (https, or http on localhost).
        @default ``DEFAULTS.auth.callback_urls``
    :param logout_urls: where its sign-out may return. @default ``DEFAULTS.auth.logout_urls``
    :param resource_server_id: the identifier of the resource server, the prefix of every scope
        (``api/tasks.write``). @default ``DEFAULTS.auth.resource_server_id``
    :param scopes: the API's scopes (e.g. ``["tasks.write"]``), which the browser client may request and the
        machine client is granted. @default none (no resource server)
    :param machine_client: a client-credentials client granted every scope (needs ``scopes``).
        @default ``DEFAULTS.auth.machine_client``
    :param domain_prefix: the Cognito domain's prefix, unique per region across all accounts, without "aws",
        "amazon" or "cognito". @default ``DEFAULTS.auth.domain_prefix`` (None: ``<stack name>-<account id>``)
    :param custom_domain: your own domain for the OAuth endpoints, with its us-east-1 certificate, instead of
        the prefix. @default none
    :param removal_policy: of the pool (``RETAIN`` also turns deletion protection on).
        @default ``DEFAULTS.removal_policy``

    Example::

        from cdk_app.api import FastApiGateway
        from cdk_app.auth import UserPool
        from cdk_app.function import FastApiFunction

        users = UserPool(stack, "Users", scopes=["tasks.write"], machine_client=True, mfa="required")
        api = FastApiFunction(stack, "Api", source="lambda_src", app="service.main:create_app")
        users.configure(api, verify_tokens=False)  # the issuer and client ids, for fastapi_lambda.auth
        FastApiGateway(stack, "Gateway", handler=api, authorizer=users.http_authorizer(),
                       public_routes=["GET /health"], route_scopes={"POST /tasks": [users.scope("tasks.write")]})
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        user_pool: cognito.IUserPool | None = None,
        clients: Sequence[cognito.IUserPoolClient] = (),
        self_sign_up: bool = _IDENTITY.self_sign_up,
        mfa: Mfa = _IDENTITY.mfa,
        threat_protection: ThreatProtection = _IDENTITY.threat_protection,
        password_min_length: int = _IDENTITY.password_min_length,
        access_token_validity: Duration = Duration.minutes(_IDENTITY.access_token_minutes),
        id_token_validity: Duration = Duration.minutes(_IDENTITY.id_token_minutes),
        refresh_token_validity: Duration = Duration.days(_IDENTITY.refresh_token_days),
        callback_urls: Sequence[str] = tuple(_IDENTITY.callback_urls),
        logout_urls: Sequence[str] = tuple(_IDENTITY.logout_urls),
        resource_server_id: str = _IDENTITY.resource_server_id,
        scopes: Sequence[str] = (),
        machine_client: bool = _IDENTITY.machine_client,
        domain_prefix: str | None = _IDENTITY.domain_prefix,
        custom_domain: cognito.CustomDomainOptions | None = None,
        removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy),
    ) -> None:
        super().__init__(scope, id)
        if user_pool is not None and not clients:
            raise ValueError("user_pool is given without clients; pass the app clients whose tokens the API accepts")
        if not COGNITO_PASSWORD_LENGTH[0] <= password_min_length <= COGNITO_PASSWORD_LENGTH[1]:
            raise ValueError(f"password_min_length={password_min_length} is not from {COGNITO_PASSWORD_LENGTH[0]} to "
                             f"{COGNITO_PASSWORD_LENGTH[1]}; use 12 or more")
        self.resource_server_id = resource_server_id
        self.scopes = tuple(scopes)
        self.machine_client: cognito.UserPoolClient | None = None
        self.web_client: cognito.UserPoolClient | None = None
        self.resource_server: cognito.UserPoolResourceServer | None = None
        self.domain: cognito.UserPoolDomain | None = None
        if user_pool is not None:
            self.user_pool, self.clients, self.owns_pool = user_pool, tuple(clients), False
            return
        self.owns_pool = True
        self.user_pool = cognito.UserPool(
            self, "Pool",
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            self_sign_up_enabled=self_sign_up,
            password_policy=cognito.PasswordPolicy(
                min_length=password_min_length, require_lowercase=True, require_uppercase=True,
                require_digits=True, require_symbols=True, temp_password_validity=Duration.days(3)),
            mfa=_MFA[mfa],
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False) if mfa != "off" else None,
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS if threat_protection != "off" else cognito.FeaturePlan.ESSENTIALS,
            standard_threat_protection_mode=_THREAT.get(threat_protection),
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
        )
        self._accept_pool_findings(mfa=mfa, threat_protection=threat_protection)
        oauth_scopes = [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL]
        if self.scopes:
            server_scopes = [cognito.ResourceServerScope(scope_name=name, scope_description=f"{name} on the API")
                             for name in self.scopes]
            self.resource_server = self.user_pool.add_resource_server(
                "ResourceServer", identifier=resource_server_id, scopes=server_scopes)
            oauth_scopes += [cognito.OAuthScope.resource_server(self.resource_server, s) for s in server_scopes]
        self.web_client = self.user_pool.add_client(
            "WebClient", generate_secret=False, prevent_user_existence_errors=True, enable_token_revocation=True,
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(flows=cognito.OAuthFlows(authorization_code_grant=True),
                                         scopes=oauth_scopes, callback_urls=list(callback_urls),
                                         logout_urls=list(logout_urls)),
            access_token_validity=access_token_validity, id_token_validity=id_token_validity,
            refresh_token_validity=refresh_token_validity,
        )
        if machine_client:
            if not self.scopes:
                raise ValueError("machine_client=True needs scopes: client credentials grant only resource-server "
                                 "scopes; pass scopes=[...]")
            self.machine_client = self.user_pool.add_client(
                "MachineClient", generate_secret=True, prevent_user_existence_errors=True,
                o_auth=cognito.OAuthSettings(flows=cognito.OAuthFlows(client_credentials=True),
                                             scopes=oauth_scopes[2:]),
                access_token_validity=access_token_validity, refresh_token_validity=refresh_token_validity,
            )
        self.clients = tuple(c for c in (self.web_client, self.machine_client) if c is not None)
        # Every client here allows an OAuth flow, and those flows exist only on a domain.
        self.domain = self.user_pool.add_domain("Domain", custom_domain=custom_domain) if custom_domain else \
            self.user_pool.add_domain("Domain", cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=domain_prefix or f"{domain_prefix_stem(Stack.of(self).stack_name)}-{Aws.ACCOUNT_ID}"))

    def _accept_pool_findings(self, *, mfa: Mfa, threat_protection: ThreatProtection) -> None:
        """What this environment's settings leave off on purpose, on the pool itself."""
        resource = self.user_pool.node.default_child
        if mfa != "required":
            acknowledge(
                resource, "COG2",
                f"MFA is '{mfa}' in this environment by its settings (auth.mfa): users may enrol a TOTP factor; "
                "production requires it.",
            )
        if threat_protection == "off":
            acknowledge(
                resource, "COG8",
                "The Plus feature plan (threat protection) is billed per active user; this environment's settings "
                "(auth.threat_protection) leave it off, production turns it on.",
            )

    @property
    def access_token_scopes(self) -> list[str]:
        """Scopes any access token of this pool carries one of: put on every protected route, they keep
        ID tokens out (a REST Cognito authorizer accepts ID tokens on a method without scopes)."""
        return ["openid", "aws.cognito.signin.user.admin", *(self.scope(name) for name in self.scopes)]

    def scope(self, name: str) -> str:
        """The full scope string tokens carry, e.g. ``api/tasks.write``."""
        return f"{self.resource_server_id}/{name}"

    @property
    def issuer(self) -> str:
        """The ``iss`` of the pool's tokens: ``https://cognito-idp.<region>.amazonaws.com/<pool id>``."""
        return f"https://cognito-idp.{Stack.of(self).region}.amazonaws.com/{self.user_pool.user_pool_id}"

    def http_authorizer(self) -> authorizers.HttpUserPoolAuthorizer:
        """The HTTP API's JWT authorizer: this pool's issuer, the clients' ids as audience.

        It carries :attr:`access_token_scopes`, which :class:`cdk_app.api.FastApiGateway` puts on
        every route it protects unless given scopes of its own.
        """
        return _PoolHttpAuthorizer("Cognito", self.user_pool, user_pool_clients=list(self.clients),
                                   access_token_scopes=self.access_token_scopes)

    def rest_authorizer(self, scope: Construct) -> apigw.CognitoUserPoolsAuthorizer:
        """The REST API's Cognito authorizer (created in ``scope``), carrying :attr:`access_token_scopes` too."""
        return _PoolRestAuthorizer(scope, "CognitoAuthorizer", cognito_user_pools=[self.user_pool],
                                   access_token_scopes=self.access_token_scopes)

    def environment(self, *, verify_tokens: bool = _IDENTITY.verify_in_function) -> Mapping[str, str]:
        """What ``fastapi_lambda.auth`` reads to check tokens itself: the issuer and the clients (no secrets)."""
        return {AUTH_ISSUER_VARIABLE: self.issuer,
                AUTH_CLIENT_IDS_VARIABLE: ",".join(c.user_pool_client_id for c in self.clients),
                AUTH_VERIFY_VARIABLE: str(verify_tokens).lower()}

    def configure(self, function: ServiceFunction, *,
                  verify_tokens: bool = _IDENTITY.verify_in_function) -> ServiceFunction:
        """Give ``function`` what it needs to check tokens itself (:meth:`environment`)."""
        return function.add_environment_variables(self.environment(verify_tokens=verify_tokens))


#: WAF capacity units of each rule (AWS WAF developer guide: the managed rule groups' pages, rate-based statements).
#: A regional web ACL includes 1,500 WCUs in its price; above that each 500 costs extra (5,000 at most).
RULE_CAPACITY = {"AWSManagedRulesCommonRuleSet": 700, "AWSManagedRulesKnownBadInputsRuleSet": 200,
                 "RateLimitPerIp": 2}
INCLUDED_CAPACITY = 1500
#: Headers that carry credentials: WAF logs the whole request otherwise (tokens and session cookies in the logs).
REDACTED_HEADERS = ("authorization", "cookie")
#: WAF sends logs only to a log group whose name starts with this (else "The ARN isn't valid" at deploy).
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"


class WebFirewall(Construct):
    """A regional WAF web ACL: AWS's common and known-bad-inputs rule sets (the latter blocks Log4j-style
    lookups and other exploit payloads) and a per-IP rate limit, in front of regional resources.

    Every request it sees is logged to :attr:`log_group`, named ``aws-waf-logs-…`` as WAF requires, with
    the Authorization and Cookie headers redacted. The log group's resource policy lets only WAF's log
    delivery of this account write to it; declaring it keeps WAF from appending to the account's shared
    ``AWSWAF-LOGS`` policy, which stops deploys once it reaches CloudWatch Logs' 5,120 characters
    (terraform-provider-aws #25296). Each account and region holds at most 10 such policies. The group is
    named (WAF's rule), so a retained one must be deleted before the stack is created again. An HTTP API
    cannot have a web ACL: use a REST API (``FastApiGateway(api_type="rest", waf_rate_limit=...)`` makes one).

    :param protect: the ARNs to put it in front of, e.g. a REST API stage or a user pool (required; may be
        empty, then :meth:`protect` them later).
    :param rate_limit: requests per 5 minutes from one IP before it is blocked, from 100 to 2,000,000,000.
        @default ``DEFAULTS.api.waf.rate_limit``
    :param log_retention: how long the request log is kept. @default ``DEFAULTS.log_retention_days``
    :param removal_policy: of the request log. @default ``DEFAULTS.removal_policy``

    Example::

        from cdk_app.auth import UserPool, WebFirewall

        users = UserPool(stack, "Users")
        WebFirewall(stack, "Firewall", protect=[users.user_pool.user_pool_arn], rate_limit=500)
    """

    def __init__(self, scope: Construct, id: str, *, protect: Sequence[str],
                 rate_limit: int = DEFAULTS.api.waf.rate_limit,
                 log_retention: logs.RetentionDays = log_retention(DEFAULTS.log_retention_days),
                 removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy)) -> None:
        super().__init__(scope, id)
        low, high = WAF_RATE_LIMITS
        if not low <= rate_limit <= high:
            raise ValueError(f"rate_limit={rate_limit} must be from {low} to {high} requests per 5 minutes per IP")
        def metric(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True)

        def managed(name: str, priority: int, metric_name: str) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name, priority=priority, override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=name)),
                visibility_config=metric(f"{id}{metric_name}"))

        self.web_acl = wafv2.CfnWebACL(
            self, "WebAcl", scope="REGIONAL", default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=metric(f"{id}WebAcl"),
            rules=[
                managed("AWSManagedRulesCommonRuleSet", 0, "CommonRules"),
                managed("AWSManagedRulesKnownBadInputsRuleSet", 1, "KnownBadInputs"),
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp", priority=2, action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=rate_limit, aggregate_key_type="IP")),
                    visibility_config=metric(f"{id}RateLimit")),
            ],
        )
        self.log_group = self._log(log_retention, removal_policy)
        self._associations = 0
        for arn in protect:
            self.protect(arn)

    def _log(self, retention: logs.RetentionDays, removal_policy: RemovalPolicy) -> logs.LogGroup:
        stack = Stack.of(self)
        log_group = logs.LogGroup(
            self, "Logs", retention=retention, removal_policy=removal_policy,
            log_group_name=WAF_LOG_GROUP_PREFIX + Names.unique_resource_name(self, max_length=200, separator="-"))
        # The ARN WAF expects names the group itself: no ':*' suffix (what LogGroup.Arn returns).
        arn = stack.format_arn(service="logs", resource="log-group", resource_name=log_group.log_group_name,
                               arn_format=ArnFormat.COLON_RESOURCE_NAME)
        # jsii's ServicePrincipal.add_to_principal_policy names its parameter _statement, so pyright does not
        # match it to the IPrincipal protocol it implements.
        delivery = cast(iam.IPrincipal, iam.ServicePrincipal("delivery.logs.amazonaws.com"))
        policy = log_group.add_to_resource_policy(iam.PolicyStatement(
            principals=[delivery],
            actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{arn}:log-stream:*"],
            conditions={"StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {"aws:SourceArn": stack.format_arn(service="logs", resource="*")}}))
        logging = wafv2.CfnLoggingConfiguration(
            self, "Logging", resource_arn=self.web_acl.attr_arn, log_destination_configs=[arn],
            redacted_fields=[wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": name})
                             for name in REDACTED_HEADERS])
        logging.node.add_dependency(policy.policy_dependable)
        skip_checkov(log_group, "CKV_AWS_158", LOG_GROUP_KEY)
        return log_group

    def protect(self, resource_arn: str) -> wafv2.CfnWebACLAssociation:
        """Put the web ACL in front of another regional resource (a user pool, another stage)."""
        self._associations += 1
        return wafv2.CfnWebACLAssociation(self, f"Association{self._associations}", resource_arn=resource_arn,
                                          web_acl_arn=self.web_acl.attr_arn)
