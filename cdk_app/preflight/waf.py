"""AWS WAF: web ACLs, their associations and their logging."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from cdk_app.preflight.engine import (
    Resource,
    Template,
    Violation,
    as_list,
    as_mapping,
    literal_text,
    number,
    referenced_ids,
    rule,
    shape,
)

WEB_ACL, ASSOCIATION = "AWS::WAFv2::WebACL", "AWS::WAFv2::WebACLAssociation"
_PROTECTABLE = "https://docs.aws.amazon.com/waf/latest/developerguide/how-aws-waf-works-resources.html"


@rule("WAF-ASSOCIATION-TARGET", ASSOCIATION,
      message="WAFInvalidParameterException: AWS WAF protects REST API stages, load balancers, AppSync, Cognito user "
              "pools, App Runner and Verified Access, not HTTP APIs; and only with a REGIONAL web ACL",
      source=f"{_PROTECTABLE}; https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-vs-rest.html")
def association_target(resource: Resource, template: Template) -> Iterator[Violation]:
    """A web ACL association names a regional resource AWS WAF can protect, with a REGIONAL web ACL."""
    arn = shape(resource.get("ResourceArn")) or ""
    targets = [template.resources[i] for i in referenced_ids(resource.get("ResourceArn")) if i in template.resources]
    if any(t.type.startswith("AWS::ApiGatewayV2::") for t in targets) or "::/apis/" in arn:
        yield Violation("associated with an HTTP API", "put the web ACL in front of a REST API stage (api.type rest), "
                        "or protect the HTTP API with route throttling")
    acl = template.target(resource.get("WebACLArn"), WEB_ACL)
    if acl is not None and acl.get("Scope") != "REGIONAL":
        yield Violation(f"web ACL {acl.id} has Scope {acl.get('Scope')!r}", "use Scope REGIONAL (CLOUDFRONT web ACLs "
                        "attach to distributions)")


@rule("WAF-ASSOCIATION-ORDER", ASSOCIATION,
      message='"AWS WAF couldn\'t perform the operation because your resource doesn\'t exist" (the association was '
              "created before the stage)",
      source="https://github.com/aws-samples/serverless-patterns/pull/2173; "
             "https://github.com/mikesouza/serverless-associate-waf/issues/27")
def association_order(resource: Resource, template: Template) -> Iterator[Violation]:
    """An association with a REST API stage is created after the stage."""
    arn = shape(resource.get("ResourceArn")) or ""
    if "/stages/" not in arn:
        return
    api_ids = referenced_ids(resource.get("ResourceArn"))
    stages = [s for s in template.of_type("AWS::ApiGateway::Stage") if referenced_ids(s.get("RestApiId")) & api_ids]
    stage_name = arn.rsplit("/stages/", 1)[1]
    for stage in stages:
        if literal_text(stage.get("StageName")) in (stage_name, None) and not template.depends(resource, stage.id):
            yield Violation(f"names a stage of its REST API but does not depend on {stage.id}", "build the ARN from the "
                            "stage (stage.stage_arn) or add a dependency on it")


@rule("WAF-RULES", WEB_ACL,
      message="WAFDuplicateItemException / WAFInvalidParameterException: rule names and priorities are unique, a "
              "rate limit is 10 to 2,000,000,000 requests",
      source="https://docs.aws.amazon.com/waf/latest/APIReference/API_Rule.html; "
             "https://docs.aws.amazon.com/waf/latest/APIReference/API_RateBasedStatement.html")
def web_acl_rules(resource: Resource, template: Template) -> Iterator[Violation]:
    """Rules of a web ACL: unique names and priorities, rate limits of 10 or more requests."""
    rules = resource.mappings("Rules")
    for key in ("Name", "Priority"):
        repeated = sorted(str(v) for v, n in Counter(r.get(key) for r in rules).items() if n > 1)
        if repeated:
            yield Violation(f"rule {key.lower()}s {repeated} are repeated", f"give each rule its own {key.lower()}")
    for r in rules:
        limit = number(as_mapping(as_mapping(r.get("Statement")).get("RateBasedStatement")).get("Limit"))
        if limit is not None and not 10 <= limit <= 2_000_000_000:
            yield Violation(f"rule {r.get('Name')!r} rate limit {limit:g}", "set 10 to 2,000,000,000 per window")


@rule("WAF-LOGGING-DESTINATION", "AWS::WAFv2::LoggingConfiguration",
      message="WAFInvalidParameterException: a web ACL logs only to a log group, bucket or Firehose stream whose name "
              "starts with aws-waf-logs-",
      source="https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html")
def logging_destination(resource: Resource, template: Template) -> Iterator[Violation]:
    """WAF logs go to a destination named aws-waf-logs-..."""
    for destination in as_list(resource.get("LogDestinationConfigs")):
        text = shape(destination) or ""
        found = [template.resources[i] for i in referenced_ids(destination) if i in template.resources]
        names = [literal_text(r.get("LogGroupName") or r.get("BucketName") or r.get("DeliveryStreamName"))
                 for r in found]
        if found and any(n is None or not n.startswith("aws-waf-logs-") for n in names):
            yield Violation(f"logs to {found[0].id}, whose name {names[0]!r} does not start with aws-waf-logs-",
                            "name the destination aws-waf-logs-<something>")
        elif not found and "\N{REPLACEMENT CHARACTER}" not in text and "aws-waf-logs-" not in text:
            yield Violation(f"logs to {text!r}", "name the destination aws-waf-logs-<something>")
