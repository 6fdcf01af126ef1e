"""Cognito: user pools (feature plan, threat protection, MFA), domains, app clients and resource servers."""

from __future__ import annotations

from collections.abc import Iterator

from cdk_app.preflight.engine import (
    PSEUDO,
    Resource,
    Template,
    Violation,
    as_list,
    literal_text,
    number,
    referenced_ids,
    rule,
    shape,
    target_id,
)
from cdk_app.settings.limits import NAMES, redirect_url_problem

POOL, CLIENT, DOMAIN = "AWS::Cognito::UserPool", "AWS::Cognito::UserPoolClient", "AWS::Cognito::UserPoolDomain"
SERVER = "AWS::Cognito::UserPoolResourceServer"
_CLIENT_DOCS = "https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPoolClient.html"
#: Scopes of user sign-in that a client-credentials token never carries.
_USER_SCOPES = frozenset({"openid", "email", "phone", "profile", "aws.cognito.signin.user.admin"})


def _flows(client: Resource) -> set[str]:
    return {f for f in as_list(client.get("AllowedOAuthFlows")) if isinstance(f, str)}


@rule("COGNITO-OAUTH-NEEDS-DOMAIN", CLIENT,
      message="no client can get a token through the flow: the OAuth endpoints (/oauth2/authorize, /oauth2/token) "
              "exist only on a user pool domain",
      source="https://docs.aws.amazon.com/cognito/latest/developerguide/cognito-user-pools-assign-domain.html")
def oauth_needs_domain(resource: Resource, template: Template) -> Iterator[Violation]:
    """A client that allows OAuth flows belongs to a pool with a domain (prefix or custom)."""
    pool = target_id(resource.get("UserPoolId"))
    if not _flows(resource) or resource.get("AllowedOAuthFlowsUserPoolClient") is not True or \
            pool not in template.resources:
        return
    if not any(target_id(d.get("UserPoolId")) == pool for d in template.of_type(DOMAIN)):
        yield Violation(f"allows {sorted(_flows(resource))} but user pool {pool} has no UserPoolDomain",
                        "add a domain (UserPool.add_domain with a per-environment prefix, or a custom domain)")


@rule("COGNITO-DOMAIN", DOMAIN,
      message='"Domain cannot contain reserved word: aws" / "The domain name contains an invalid character"; a custom '
              "domain needs an ACM certificate in us-east-1",
      source=f"{NAMES['cognito-domain-prefix'].source}; https://github.com/aws-amplify/amplify-cli/issues/3854; "
             "https://docs.aws.amazon.com/cognito/latest/developerguide/cognito-user-pools-add-custom-domain.html")
def domain(resource: Resource, template: Template) -> Iterator[Violation]:
    """A domain prefix fits Cognito's rules (no aws/amazon/cognito); a custom domain has a us-east-1 certificate."""
    name = shape(resource.get("Domain"), {**PSEUDO, "AWS::AccountId": "123456789012"})
    if name is None or "\N{REPLACEMENT CHARACTER}" in name:
        return
    if "." not in name:
        if (why := NAMES["cognito-domain-prefix"].problem(name)) is not None:
            yield Violation(f"Domain={name!r}", "choose a prefix of lower-case letters, digits and hyphens without "
                            "'aws', 'amazon' or 'cognito' (e.g. <app>-<env>-<account>)", message=why)
        return
    certificate = resource.get("CustomDomainConfig", "CertificateArn")
    if not certificate:
        yield Violation(f"custom domain {name!r} without CustomDomainConfig.CertificateArn", "pass an ACM certificate "
                        "for the domain, issued in us-east-1")
    elif (arn := literal_text(certificate)) is not None and ":us-east-1:" not in arn:
        yield Violation(f"certificate {arn} is not in us-east-1", "issue the certificate in us-east-1 (Cognito serves "
                        "custom domains through CloudFront)")


@rule("COGNITO-CLIENT-FLOWS", CLIENT,
      message='"client_credentials flow can not be selected along with code flow or implicit flow" / "... if client '
              'does not have a client secret" / "CallbackUrls can not be empty when code flow or implicit flow is '
              'selected"',
      source=f"{_CLIENT_DOCS}; https://github.com/cisagov/crossfeed/pull/440")
def client_flows(resource: Resource, template: Template) -> Iterator[Violation]:
    """OAuth flows fit together (client credentials alone, with a secret; code flows with callback URLs).

    Client credentials grant resource-server scopes only; AllowedOAuthFlowsUserPoolClient needs flows and scopes.
    """
    flows, scopes = _flows(resource), [s for s in as_list(resource.get("AllowedOAuthScopes")) if isinstance(s, str)]
    oauth = resource.get("AllowedOAuthFlowsUserPoolClient") is True
    if oauth and (not flows or not as_list(resource.get("AllowedOAuthScopes"))):
        yield Violation("AllowedOAuthFlowsUserPoolClient without flows or scopes", "list the flows and the scopes",
                        message="AllowedOAuthFlows and AllowedOAuthScopes are required when the client uses OAuth")
    if "client_credentials" in flows:
        if flows - {"client_credentials"}:
            yield Violation(f"AllowedOAuthFlows={sorted(flows)}", "use a separate client for client credentials")
        if resource.get("GenerateSecret") is not True:
            yield Violation("client_credentials without GenerateSecret", "generate a client secret")
        if user := sorted(set(scopes) & _USER_SCOPES):
            yield Violation(f"client_credentials with user scopes {user}", "grant only resource-server scopes "
                            "(<server>/<scope>)", message="client credentials grant only resource-server scopes")
    if flows & {"code", "implicit"} and not as_list(resource.get("CallbackURLs")):
        yield Violation(f"{sorted(flows & {'code', 'implicit'})} without CallbackURLs", "list the callback URLs")


@rule("COGNITO-REDIRECT-URLS", CLIENT, message="InvalidParameterException: redirect URLs are absolute, HTTPS (except "
      "http://localhost) and without a fragment",
      source=f"{_CLIENT_DOCS}#CognitoUserPools-CreateUserPoolClient-request-CallbackURLs; "
             "https://github.com/Destrayon/Connapse/issues/441")
def redirect_urls(resource: Resource, template: Template) -> Iterator[Violation]:
    """Callback and sign-out URLs Cognito accepts."""
    for key in ("CallbackURLs", "LogoutURLs", "DefaultRedirectURI"):
        for url in as_list(resource.get(key)):
            text = literal_text(url)
            if text is not None and (why := redirect_url_problem(text)) is not None:
                yield Violation(f"{key} {text!r}", "use https (or http://localhost for local development)", message=why,
                                location=f"Properties/{key}")


_UNIT_MINUTES = {"seconds": 1 / 60, "minutes": 1, "hours": 60, "days": 1440}


@rule("COGNITO-TOKEN-VALIDITY", CLIENT, message="InvalidParameterException: access and ID tokens last 5 minutes to 1 "
      "day, refresh tokens 60 minutes to 10 years", source=f"{_CLIENT_DOCS}#CognitoUserPools-CreateUserPoolClient-"
      "request-AccessTokenValidity")
def token_validity(resource: Resource, template: Template) -> Iterator[Violation]:
    """Token validities within Cognito's bounds."""
    units = resource.mapping("TokenValidityUnits")
    for key, unit_key, default_unit, low, high in (
            ("AccessTokenValidity", "AccessToken", "hours", 5, 1440), ("IdTokenValidity", "IdToken", "hours", 5, 1440),
            ("RefreshTokenValidity", "RefreshToken", "days", 60, 3650 * 1440)):
        value = number(resource.get(key))
        factor = _UNIT_MINUTES.get(units.get(unit_key, default_unit))
        if value is not None and factor is not None and not low <= value * factor <= high:
            yield Violation(f"{key}={value:g} {units.get(unit_key, default_unit)}", f"keep it between {low} and "
                            f"{high} minutes", location=f"Properties/{key}")


@rule("COGNITO-CLIENT-SCOPES", CLIENT, message='"ScopeDoesNotExistException: Invalid scope requested" (the scope is '
      "not defined, or its resource server is created after the client)", source=_CLIENT_DOCS)
def client_scopes(resource: Resource, template: Template) -> Iterator[Violation]:
    """A resource-server scope a client allows is defined by a server of its pool, created before the client."""
    pool = target_id(resource.get("UserPoolId"))
    servers = {literal_text(s.get("Identifier")): s for s in template.of_type(SERVER)
               if target_id(s.get("UserPoolId")) == pool}
    for scope in as_list(resource.get("AllowedOAuthScopes")):
        text = shape(scope) or ""
        server_id, _, name = text.rpartition("/")
        server = servers.get(server_id) or next((s for s in servers.values() if s.id in referenced_ids(scope)), None)
        if server is None or "\N{REPLACEMENT CHARACTER}" in name:
            continue
        defined = {x.get("ScopeName") for x in server.mappings("Scopes")}
        if name not in defined:
            yield Violation(f"scope {text!r} is not defined by {server.id}", f"add scope {name!r} to the resource "
                            "server, or remove it from the client")
        elif not template.depends(resource, server.id):
            yield Violation(f"scope {text!r} but the client does not depend on {server.id}", "refer to the server "
                            "(OAuthScope.resource_server) or add a dependency on it")


@rule("COGNITO-FEATURE-PLAN", POOL,
      message='"FeatureUnavailableInTierException: The following features need to be disabled for the ESSENTIALS '
              'pricing tier configured: Threat Protection"',
      source="https://github.com/aws/aws-cdk/pull/33565; https://github.com/hashicorp/terraform-provider-aws/pull/40734")
def feature_plan(resource: Resource, template: Template) -> Iterator[Violation]:
    """Threat protection (advanced security) only on the Plus feature plan."""
    mode = resource.get("UserPoolAddOns", "AdvancedSecurityMode")
    tier = resource.get("UserPoolTier", default="ESSENTIALS")
    if mode in ("AUDIT", "ENFORCED") and tier != "PLUS":
        yield Violation(f"AdvancedSecurityMode {mode} on the {tier} plan", "set UserPoolTier (feature_plan) to PLUS, or "
                        "turn threat protection off", location="Properties/UserPoolAddOns")


@rule("COGNITO-MFA", POOL, message="InvalidParameterException: SMS MFA needs an SmsConfiguration; email MFA needs the "
      "Essentials or Plus plan and Amazon SES (EmailSendingAccount DEVELOPER); MFA ON needs a factor",
      source="https://docs.aws.amazon.com/cognito/latest/developerguide/user-pool-settings-mfa.html")
def mfa(resource: Resource, template: Template) -> Iterator[Violation]:
    """Each MFA factor has what it needs."""
    factors = set(as_list(resource.get("EnabledMfas")))
    if resource.get("MfaConfiguration") == "ON" and not factors:
        yield Violation("MfaConfiguration ON without EnabledMfas", "enable a factor (SOFTWARE_TOKEN_MFA)")
    if "SMS_MFA" in factors and not resource.get("SmsConfiguration"):
        yield Violation("SMS_MFA without SmsConfiguration", "configure SMS (an IAM role for SNS) or use TOTP")
    if "EMAIL_OTP" in factors and (resource.get("EmailConfiguration", "EmailSendingAccount") != "DEVELOPER"
                                   or resource.get("UserPoolTier") == "LITE"):
        yield Violation("EMAIL_OTP without SES (EmailSendingAccount DEVELOPER) or on the Lite plan",
                        "send email through SES on the Essentials or Plus plan, or use TOTP")
