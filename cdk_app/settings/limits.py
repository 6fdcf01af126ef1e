"""The names, lengths and formats AWS services accept, written once.

Plain Python: the settings (:mod:`cdk_app.settings.schema`) check what a reader writes in ``cdk.json``
with these, and the preflight (:mod:`cdk_app.preflight`) checks every resource of a synthesized
template with the same ones.
Each function answers why AWS would refuse a value, or None.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

#: Cognito's reserved words in a domain prefix ("Domain cannot contain reserved word: aws").
COGNITO_RESERVED_WORDS = ("aws", "amazon", "cognito")


@dataclass(frozen=True)
class NameLimit:
    """How a service limits one kind of name."""

    what: str  # e.g. "a Lambda function name"
    pattern: str  # the whole name must match
    allowed: str  # the pattern in words
    max_length: int
    source: str
    min_length: int = 1
    checks: tuple[Callable[[str], str | None], ...] = ()

    def problem(self, value: str) -> str | None:
        """Why AWS refuses ``value`` as this kind of name, or None."""
        if not self.min_length <= len(value) <= self.max_length:
            return (f"{len(value)} characters is not {self.what}'s length "
                    f"({self.min_length} to {self.max_length} characters)")
        if not re.fullmatch(self.pattern, value):
            return f"{self.what} may hold only {self.allowed}"
        for check in self.checks:
            if (why := check(value)) is not None:
                return why
        return None


def _not(regex: str, why: str) -> Callable[[str], str | None]:
    compiled = re.compile(regex, re.IGNORECASE)
    return lambda value: why if compiled.search(value) else None


def _ssm_levels(value: str) -> str | None:
    levels = len([part for part in value.split("/") if part])
    return f"a parameter hierarchy may have at most 15 levels, this one has {levels}" if levels > 15 else None


def _not_ip(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return None
    return "a bucket name must not look like an IP address"


_ELASTICACHE_ID = (_not(r"--", "it must not contain two hyphens in a row"), _not(r"-$", "it must not end with a hyphen"))
_COGNITO_NAME = (r"[\w\s+=,.@-]+", "letters, digits, spaces and + = , . @ - _")

#: Every kind of name the preflight and the settings check, by key.
NAMES: dict[str, NameLimit] = {
    "stack": NameLimit("a stack name", r"[A-Za-z][A-Za-z0-9-]*", "letters, digits and hyphens, starting with a letter",
                       128, "https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStack.html"),
    "lambda-function": NameLimit(
        "a Lambda function name", r"[A-Za-z0-9_-]+", "letters, digits, hyphens and underscores", 64,
        "https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html#lambda-CreateFunction-request-FunctionName"),
    "lambda-alias": NameLimit(
        "a Lambda alias name", r"(?!\d+$)[A-Za-z0-9_-]+", "letters, digits, hyphens and underscores (not only digits)",
        128, "https://docs.aws.amazon.com/lambda/latest/api/API_CreateAlias.html#lambda-CreateAlias-request-Name"),
    "iam-role": NameLimit("an IAM role name", r"[\w+=,.@-]+", "letters, digits and + = , . @ - _", 64,
                          "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"),
    "iam-policy": NameLimit("an IAM policy name", r"[\w+=,.@-]+", "letters, digits and + = , . @ - _", 128,
                            "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"),
    "log-group": NameLimit("a log group name", r"[.\-_/#A-Za-z0-9]+", "letters, digits and . - _ / #", 512,
                           "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html"),
    "ssm-parameter": NameLimit(
        "a parameter name", r"/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*", "letters, digits and _ . - in /-separated levels",
        1011, "https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-parameter-name-constraints.html",
        checks=(_not(r"^/?(aws|ssm)", "parameter names beginning with 'aws' or 'ssm' are reserved by AWS"),
                _ssm_levels)),
    "secret": NameLimit("a secret name", r"[A-Za-z0-9/_+=.@-]+", "letters, digits and / _ + = . @ -", 512,
                        "https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html"),
    "sqs-queue": NameLimit("a queue name", r"[A-Za-z0-9_-]+(\.fifo)?",
                           "letters, digits, hyphens and underscores (FIFO queues end in .fifo)", 80,
                           "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html"),
    "sns-topic": NameLimit("a topic name", r"[A-Za-z0-9_-]+(\.fifo)?",
                           "letters, digits, hyphens and underscores (FIFO topics end in .fifo)", 256,
                           "https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html"),
    "dynamodb-table": NameLimit("a table name", r"[A-Za-z0-9_.-]+", "letters, digits and _ . -", 255,
                                "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html",
                                min_length=3),
    "s3-bucket": NameLimit(
        "a bucket name", r"[a-z0-9][a-z0-9.-]*[a-z0-9]", "lower-case letters, digits, dots and hyphens", 63,
        "https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html", min_length=3,
        checks=(_not(r"\.\.", "a bucket name must not contain two dots in a row"),
                _not(r"^(xn--|sthree-|amzn-s3-demo-)", "that prefix is reserved for bucket names"),
                _not(r"(-s3alias|--ol-s3|--x-s3|\.mrap)$", "that suffix is reserved for bucket names"), _not_ip)),
    "events-rule": NameLimit("a rule name", r"[.\-_A-Za-z0-9]+", "letters, digits and . - _", 64,
                             "https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html"),
    "alarm": NameLimit("an alarm name", r"[^\x00-\x1f]+", "printable characters", 255,
                       "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html"),
    "dashboard": NameLimit("a dashboard name", r"[A-Za-z0-9_-]+", "letters, digits, hyphens and underscores", 255,
                           "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutDashboard.html"),
    "http-api": NameLimit("an HTTP API name", r"[^\x00-\x1f]+", "printable characters", 128,
                          "https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis.html"),
    "http-stage": NameLimit("an HTTP API stage name", r"\$default|[A-Za-z0-9_-]+",
                            "letters, digits, hyphens and underscores, or $default", 128,
                            "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-stages.html"),
    "rest-stage": NameLimit("a REST API stage name", r"[A-Za-z0-9_-]+", "letters, digits, hyphens and underscores", 128,
                            "https://docs.aws.amazon.com/apigateway/latest/api/API_CreateStage.html"),
    "cognito-pool": NameLimit("a user pool name", *_COGNITO_NAME, 128,
                              "https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPool.html"),
    "cognito-client": NameLimit(
        "an app client name", *_COGNITO_NAME, 128,
        "https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPoolClient.html"),
    "resource-server": NameLimit(
        "a resource server identifier", r"[\x21\x23-\x5B\x5D-\x7E]+", "printable ASCII except space, \" and \\", 256,
        "https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateResourceServer.html"),
    "oauth-scope": NameLimit(
        "a scope name", r"[\x21\x23-\x2E\x30-\x5B\x5D-\x7E]+", "printable ASCII except space, \", / and \\", 256,
        "https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_ResourceServerScopeType.html"),
    "cognito-domain-prefix": NameLimit(
        "a Cognito domain prefix", r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?",
        "lower-case letters, digits and hyphens, starting and ending with a letter or digit", 63,
        "https://docs.aws.amazon.com/cognito/latest/developerguide/cognito-user-pools-assign-domain-prefix.html; "
        "https://github.com/aws-solutions/content-analysis-on-aws/issues/8",
        checks=tuple(_not(word, f"Cognito refuses it: 'Domain cannot contain reserved word: {word}'")
                     for word in COGNITO_RESERVED_WORDS)),
    "elasticache-id": NameLimit(
        "an ElastiCache name", r"[A-Za-z][A-Za-z0-9-]*", "letters, digits and hyphens, starting with a letter", 40,
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/APIReference/API_CreateReplicationGroup.html",
        checks=_ELASTICACHE_ID),
    "waf-name": NameLimit("a WAF name", r"[\w-]+", "letters, digits, hyphens and underscores", 128,
                          "https://docs.aws.amazon.com/waf/latest/APIReference/API_CreateWebACL.html"),
    "waf-metric": NameLimit("a WAF metric name", r"[\w#:.\-/]+", "letters, digits and # : . - / _", 255,
                            "https://docs.aws.amazon.com/waf/latest/APIReference/API_VisibilityConfig.html"),
    "kms-alias": NameLimit(
        "a KMS alias", r"alias/[A-Za-z0-9:/_-]+", "'alias/' then letters, digits and : / _ -", 256,
        "https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html",
        checks=(_not(r"^alias/aws/", "the 'alias/aws/' prefix is reserved for AWS managed keys"),)),
    "scaling-policy": NameLimit(
        "a scaling policy name", r"[^\x00-\x1f:/|]+", "printable characters except : / |", 256,
        "https://docs.aws.amazon.com/autoscaling/application/APIReference/API_PutScalingPolicy.html"),
    "scheduled-action": NameLimit(
        "a scheduled action name", r"[^\x00-\x1f:/|]+", "printable characters except : / |", 256,
        "https://docs.aws.amazon.com/autoscaling/application/APIReference/API_PutScheduledAction.html"),
}

#: Where each kind of name appears in a template: (resource type, property path, kind). "*" walks a list.
NAME_PROPERTIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("AWS::CloudFormation::Stack", ("StackName",), "stack"),  # the template's own stack (engine.STACK)
    ("AWS::Lambda::Function", ("FunctionName",), "lambda-function"),
    ("AWS::Lambda::Alias", ("Name",), "lambda-alias"),
    ("AWS::IAM::Role", ("RoleName",), "iam-role"),
    ("AWS::IAM::Policy", ("PolicyName",), "iam-policy"),
    ("AWS::IAM::ManagedPolicy", ("ManagedPolicyName",), "iam-policy"),
    ("AWS::Logs::LogGroup", ("LogGroupName",), "log-group"),
    ("AWS::SSM::Parameter", ("Name",), "ssm-parameter"),
    ("AWS::SecretsManager::Secret", ("Name",), "secret"),
    ("AWS::SQS::Queue", ("QueueName",), "sqs-queue"),
    ("AWS::SNS::Topic", ("TopicName",), "sns-topic"),
    ("AWS::DynamoDB::Table", ("TableName",), "dynamodb-table"),
    ("AWS::DynamoDB::GlobalTable", ("TableName",), "dynamodb-table"),
    ("AWS::S3::Bucket", ("BucketName",), "s3-bucket"),
    ("AWS::Events::Rule", ("Name",), "events-rule"),
    ("AWS::CloudWatch::Alarm", ("AlarmName",), "alarm"),
    ("AWS::CloudWatch::Dashboard", ("DashboardName",), "dashboard"),
    ("AWS::ApiGatewayV2::Api", ("Name",), "http-api"),
    ("AWS::ApiGatewayV2::Stage", ("StageName",), "http-stage"),
    ("AWS::ApiGateway::Stage", ("StageName",), "rest-stage"),
    ("AWS::Cognito::UserPool", ("UserPoolName",), "cognito-pool"),
    ("AWS::Cognito::UserPoolClient", ("ClientName",), "cognito-client"),
    ("AWS::Cognito::UserPoolResourceServer", ("Identifier",), "resource-server"),
    ("AWS::Cognito::UserPoolResourceServer", ("Scopes", "*", "ScopeName"), "oauth-scope"),
    ("AWS::ElastiCache::ServerlessCache", ("ServerlessCacheName",), "elasticache-id"),
    ("AWS::ElastiCache::ReplicationGroup", ("ReplicationGroupId",), "elasticache-id"),
    ("AWS::WAFv2::WebACL", ("Name",), "waf-name"),
    ("AWS::WAFv2::WebACL", ("VisibilityConfig", "MetricName"), "waf-metric"),
    ("AWS::WAFv2::WebACL", ("Rules", "*", "VisibilityConfig", "MetricName"), "waf-metric"),
    ("AWS::KMS::Alias", ("AliasName",), "kms-alias"),
    ("AWS::ApplicationAutoScaling::ScalingPolicy", ("PolicyName",), "scaling-policy"),
    ("AWS::ApplicationAutoScaling::ScalableTarget", ("ScheduledActions", "*", "ScheduledActionName"),
     "scheduled-action"),
)


def name_problem(kind: str, value: str) -> str | None:
    """Why AWS refuses ``value`` as a name of ``kind`` (a key of :data:`NAMES`), or None."""
    return NAMES[kind].problem(value)


# --- values that are not names ----------------------------------------------------------------------

#: What each AWS partition calls its regions, and the regions known when this list was written.
REGION_PATTERNS = (r"(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+", r"cn-\w+-\d+", r"us-gov-\w+-\d+", r"us-iso[a-z]?-\w+-\d+",
                   r"eu-isoe-\w+-\d+", r"eusc-de-\w+-\d+")
KNOWN_REGIONS = frozenset({
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
    "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1",
    "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1",
    "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2", "cn-north-1", "cn-northwest-1",
    "us-gov-east-1", "us-gov-west-1", "us-iso-east-1", "us-iso-west-1", "us-isob-east-1", "us-isob-west-1",
    "eu-isoe-west-1", "us-isof-east-1", "us-isof-south-1", "eusc-de-east-1",
})


def region_problem(region: str) -> str | None:
    """Why ``region`` names no AWS region, with the closest one; None for a known region."""
    if region in KNOWN_REGIONS:
        return None
    closest = difflib.get_close_matches(region, sorted(KNOWN_REGIONS), n=1)
    hint = f"; did you mean {closest[0]!r}" if closest else ""
    if not any(re.fullmatch(pattern, region) for pattern in REGION_PATTERNS):
        return f"no AWS region is called that (regions look like 'eu-west-1'){hint}"
    return (f"it is not one of the {len(KNOWN_REGIONS)} AWS regions this library knows{hint} (a region opened "
            "later needs it added to KNOWN_REGIONS in cdk_app/settings/limits.py)")


_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}")


def email_problem(address: str) -> str | None:
    """Why SNS would refuse ``address`` for an email subscription ("Invalid parameter: Email address"), or None."""
    if len(address) > 254 or not _EMAIL.fullmatch(address) or ".." in address:
        return "it is not an email address SNS accepts (name@domain.tld, no spaces)"
    return None


#: Loopback hosts Cognito accepts over plain HTTP in redirect URLs.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def redirect_url_problem(url: str) -> str | None:
    """Why Cognito refuses ``url`` as a callback or sign-out URL, or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "it is not a URL"
    if not parts.scheme or not parts.netloc:
        return "it is not an absolute URL (scheme://host/path)"
    if parts.fragment:
        return "Cognito refuses redirect URLs with a fragment (#...)"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return "Cognito requires HTTPS except for http://localhost, http://127.0.0.1 and http://[::1]"
    if len(url) > 1024:
        return "Cognito accepts at most 1024 characters"
    return None


def tag_problem(key: str, value: str) -> str | None:
    """Why AWS refuses a tag, or None."""
    if not 1 <= len(key) <= 128:
        return f"tag key {key!r} has {len(key)} characters (1 to 128 allowed)"
    if key.lower().startswith("aws:"):
        return f"tag key {key!r} starts with 'aws:', which is reserved for AWS"
    if len(value) > 256:
        return f"the value of tag {key!r} has {len(value)} characters (at most 256)"
    pattern = r"[\w\s.:/=+\-@]*"
    for text in (key, value):
        if not re.fullmatch(pattern, text):
            return f"tag {key!r} holds characters AWS refuses (letters, digits, spaces and _ . : / = + - @ only)"
    return None


#: Tags one resource may carry.
MAX_TAGS = 50
#: A WAF rate-based rule's limit, in requests per 5 minutes per IP (AWS WAF's RateBasedStatement).
WAF_RATE_LIMITS = (100, 2_000_000_000)
#: API Gateway's largest minimum compression size of a REST API, in bytes (10 MiB).
MAX_COMPRESSION_BYTES = 10_485_760
#: The shortest and longest minimum password length a Cognito user pool accepts.
COGNITO_PASSWORD_LENGTH = (8, 99)


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone_problem(zone: str) -> str | None:
    """Why Application Auto Scaling refuses ``zone`` (not an IANA name), or None; None too without a tz database."""
    if not _time_zones() or zone in _time_zones():
        return None
    closest = difflib.get_close_matches(zone, sorted(_time_zones()), n=1)
    return "it is not an IANA time zone name" + (f"; did you mean {closest[0]!r}" if closest else "")
