"""An architecture diagram per stack, drawn from its synthesized template (Mermaid, which GitHub renders).

``make diagram`` synthesizes the app and rewrites every block between ``<!-- diagram:<stack> -->`` and
``<!-- /diagram:<stack> -->`` in the files it is given (README.md), so the picture shows what each environment
turns on: the front door (HTTP or REST API, WAF, authorizer), the functions with their memory, architecture
and cold-start strategy, what invokes them (schedules, queues, bucket notifications), what they read and
write (from their roles' policies and environment), the VPC and what sits in it, and the alarms' path.
Nothing here knows this project's settings: any CDK app's ``cdk.out`` works.

    python -m cdk_app.diagram cdk.out --update README.md     # rewrite the marked blocks
    python -m cdk_app.diagram cdk.out --check README.md      # exit 1 when a block is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdk_app import markdown
from cdk_app.assembly import Function, StackTemplate, listed, load_templates, rate_minutes, references, short_name
from cdk_app.shapes import is_object

#: Resource types drawn as one node each, and the word that starts their label.
SINGLE = {
    "AWS::SQS::Queue": "SQS", "AWS::DynamoDB::Table": "DynamoDB", "AWS::DynamoDB::GlobalTable": "DynamoDB",
    "AWS::S3::Bucket": "S3", "AWS::SNS::Topic": "SNS", "AWS::Cognito::UserPool": "Cognito user pool",
    "AWS::ElastiCache::ServerlessCache": "ElastiCache Serverless",
    "AWS::ElastiCache::ReplicationGroup": "ElastiCache", "AWS::ElastiCache::CacheCluster": "ElastiCache",
    "AWS::WAFv2::WebACL": "WAF",
}
#: Resource types drawn as one node for all of them (a count), keyed by the node id.
GROUPED = {
    "secrets": ("AWS::SecretsManager::Secret", "Secrets Manager", "secretsmanager:"),
    "parameters": ("AWS::SSM::Parameter", "SSM parameters", "ssm:"),
    "alarms": ("AWS::CloudWatch::Alarm", "CloudWatch alarms", None),
    "dashboards": ("AWS::CloudWatch::Dashboard", "CloudWatch dashboards", None),
    "logs": ("AWS::Logs::LogGroup", "CloudWatch Logs", None),
    "keys": ("AWS::KMS::Key", "KMS keys", "kms:"),
}
IN_VPC = ("AWS::ElastiCache::ServerlessCache", "AWS::ElastiCache::ReplicationGroup",
          "AWS::ElastiCache::CacheCluster")
WRITE_VERBS = ("Put", "Send", "Update", "Delete", "Write", "Create", "Publish", "BatchWrite", "Change")
#: Actions that read metadata, not data: they do not make an edge "read" when the function also writes.
METADATA_VERBS = ("Describe", "List", "GetQueueAttributes", "GetQueueUrl")
MFA = {"ON": "MFA required", "OPTIONAL": "MFA optional", "OFF": "no MFA"}


@dataclass
class Graph:
    nodes: dict[str, str] = field(default_factory=dict)  # id → a Mermaid node (shape and label)
    in_vpc: list[str] = field(default_factory=list)
    edges: set[tuple[str, str, str, bool]] = field(default_factory=set)  # (from, to, label, dashed)

    def edge(self, source: str | None, target: str | None, label: str = "", dashed: bool = False) -> None:
        if source and target and source != target and source in self.nodes and target in self.nodes:
            self.edges.add((source, target, label, dashed))


class Drawing:
    """Builds the graph of one stack."""

    def __init__(self, stack: StackTemplate) -> None:
        self.stack = stack
        self.graph = Graph()
        self.ids: dict[str, str] = {}  # logical id → node id

    # --- nodes ------------------------------------------------------------------------------------

    def node_id(self, logical_id: str) -> str:
        if logical_id not in self.ids:
            candidate = re.sub(r"\W", "_", short_name(logical_id))
            self.ids[logical_id] = candidate if candidate not in self.ids.values() else logical_id
        return self.ids[logical_id]

    def add(self, logical_id: str, label: str, shape: tuple[str, str] = ("[", "]"), vpc: bool = False) -> None:
        node = self.node_id(logical_id)
        self.graph.nodes[node] = f'{shape[0]}"{escape(label)}"{shape[1]}'
        if vpc:
            self.graph.in_vpc.append(node)

    def draw(self) -> Graph:
        stack = self.stack
        self.graph.nodes["clients"] = '(["Clients"])'
        for api, props in stack.of_type("AWS::ApiGatewayV2::Api").items():
            self.add(api, f"API Gateway {props.get('ProtocolType', 'HTTP')} API")
        for api in stack.of_type("AWS::ApiGateway::RestApi"):
            traced = any(props.get("TracingEnabled") and api in references(props.get("RestApiId"))
                         for props in stack.of_type("AWS::ApiGateway::Stage").values())
            self.add(api, "API Gateway REST API" + (" · X-Ray" if traced else ""))
        for function in stack.functions.values():
            self.add(function.logical_id, function_label(function), vpc=function.in_vpc)
        for rule, props in stack.of_type("AWS::Events::Rule").items():
            schedule = props.get("ScheduleExpression")
            self.add(rule, f"EventBridge {schedule}" if schedule else "EventBridge rule", ("([", "])"))
        for logical_id, kind in self.single_resources():
            self.add(logical_id, self.label(logical_id, kind), vpc=kind in IN_VPC)
        for node, (kind, word, _) in GROUPED.items():
            found = stack.of_type(kind)
            if found:
                self.graph.nodes[node] = f'["{escape(grouped_label(kind, word, found))}"]'
        if any(function.tracing for function in stack.functions.values()):
            self.graph.nodes["xray"] = '["X-Ray traces"]'
        self.network()
        self.connect()
        return self.graph

    def single_resources(self) -> list[tuple[str, str]]:
        log_buckets = {target for props in self.stack.of_type("AWS::S3::Bucket").values()
                       for target in references(props.get("LoggingConfiguration", {}).get("DestinationBucketName"))}
        return [(logical_id, resource["Type"]) for logical_id, resource in self.stack.resources.items()
                if resource.get("Type") in SINGLE and logical_id not in log_buckets]

    def label(self, logical_id: str, kind: str) -> str:
        props = self.stack.resources[logical_id].get("Properties", {})
        word, name = SINGLE[kind], short_name(logical_id)
        if kind == "AWS::SQS::Queue":
            dead_letter = any(logical_id in references(other.get("RedrivePolicy"))
                              for other in self.stack.of_type(kind).values())
            return f"SQS {name}" + (" (dead letters)" if dead_letter else "")
        if kind.startswith("AWS::DynamoDB"):
            billing = "on-demand" if props.get("BillingMode") == "PAY_PER_REQUEST" else "provisioned"
            pitr = any(replica.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")
                       for replica in [props, *props.get("Replicas", [])])
            return f"DynamoDB {name}<br/>{billing}" + (" · point-in-time recovery" if pitr else "")
        if kind == "AWS::S3::Bucket":
            return f"S3 {name}" + ("<br/>access logs" if "LoggingConfiguration" in props else "")
        if kind == "AWS::ElastiCache::ServerlessCache":
            return f"ElastiCache Serverless<br/>{props.get('Engine', '')} {props.get('MajorEngineVersion', '')}".strip()
        if kind == "AWS::ElastiCache::ReplicationGroup":
            nodes = props.get("NumCacheClusters") or props.get("NumNodeGroups", 1) * (
                props.get("ReplicasPerNodeGroup", 0) + 1)
            multi_az = " · multi-AZ" if props.get("MultiAZEnabled") else ""
            return (f"ElastiCache {props.get('Engine', 'redis')} {props.get('EngineVersion', '')}<br/>"
                    f"{nodes} × {props.get('CacheNodeType', '?')}{multi_az}")
        if kind == "AWS::ElastiCache::CacheCluster":
            return (f"ElastiCache {props.get('Engine', '')}<br/>"
                    f"{props.get('NumCacheNodes', 1)} × {props.get('CacheNodeType', '?')}")
        if kind == "AWS::Cognito::UserPool":
            tier = str(props.get("UserPoolTier", "ESSENTIALS")).capitalize()
            threat = " · threat protection" if props.get("UserPoolAddOns", {}).get("AdvancedSecurityMode") in (
                "ENFORCED", "AUDIT") else ""
            return f"Cognito user pool<br/>{tier} · {MFA.get(props.get('MfaConfiguration', 'OFF'), 'MFA')}{threat}"
        if kind == "AWS::SNS::Topic":
            subscriptions = len(props.get("Subscription", [])) + sum(
                logical_id in references(sub.get("TopicArn"))
                for sub in self.stack.of_type("AWS::SNS::Subscription").values())
            return f"SNS {name}" + (f"<br/>{subscriptions} subscription(s)" if subscriptions else "")
        if kind == "AWS::WAFv2::WebACL":
            return f"WAF · {len(props.get('Rules', []))} rules"
        return f"{word} {name}"

    def network(self) -> None:
        stack = self.stack
        endpoints = stack.of_type("AWS::EC2::VPCEndpoint")
        if endpoints:
            kinds: dict[str, list[str]] = {}
            for props in endpoints.values():
                service = str(render(props.get("ServiceName"))).rsplit(".", 1)[-1]
                kinds.setdefault(props.get("VpcEndpointType", "Gateway").lower(), []).append(service)
            lines = [f"{kind}: {', '.join(sorted(services))}" for kind, services in sorted(kinds.items())]
            self.graph.nodes["endpoints"] = f'["{escape("VPC endpoints<br/>" + "<br/>".join(lines))}"]'
            self.graph.in_vpc.append("endpoints")
        nat = stack.of_type("AWS::EC2::NatGateway")
        if nat:
            self.graph.nodes["nat"] = f'["{escape(f"NAT gateway × {len(nat)}")}"]'
            self.graph.in_vpc.append("nat")

    # --- edges ------------------------------------------------------------------------------------

    def connect(self) -> None:
        stack, graph = self.stack, self.graph
        integrations = [(props.get("ApiId"), props.get("IntegrationUri"))
                        for props in stack.of_type("AWS::ApiGatewayV2::Integration").values()]
        integrations += [(props.get("RestApiId"), props.get("Integration", {}).get("Uri"))
                         for props in stack.of_type("AWS::ApiGateway::Method").values()]
        for api, functions in stack.entry_points.items():
            graph.edge("clients", self.ids.get(api), "HTTPS")
            through_alias = any(api in references(api_ref) and any(
                stack.type_of(target) == "AWS::Lambda::Alias" for target in references(uri))
                for api_ref, uri in integrations)
            for function in functions:
                graph.edge(self.ids.get(api), self.ids.get(function), "invokes alias" if through_alias else "invokes")
        self.authorizers()
        for props in stack.of_type("AWS::WAFv2::WebACLAssociation").values():
            for waf in references(props.get("WebACLArn")):
                for target in references(props.get("ResourceArn")):
                    graph.edge(self.ids.get(waf), self.ids.get(self.api_of(target)), "filters")
        for rule, props in stack.of_type("AWS::Events::Rule").items():
            warmup = rate_minutes(props.get("ScheduleExpression")) is not None
            for target in props.get("Targets", []):
                for logical_id in self.targets(target.get("Arn")):
                    graph.edge(self.ids.get(rule), self.ids.get(logical_id), "warmup" if warmup else "")
        for source, function, _ in stack.event_sources():
            graph.edge(self.ids.get(source), self.ids.get(function), "batches")
        for queue, props in stack.of_type("AWS::SQS::Queue").items():
            redrive: dict[str, Any] = props.get("RedrivePolicy") or {}
            for dead_letters in references(redrive):
                graph.edge(self.ids.get(queue), self.ids.get(dead_letters),
                           f"after {redrive.get('maxReceiveCount', '?')} receives", dashed=True)
        for props in [*stack.of_type("Custom::S3BucketNotifications").values(),
                      *({"BucketName": {"Ref": bucket}, "NotificationConfiguration": p["NotificationConfiguration"]}
                        for bucket, p in stack.of_type("AWS::S3::Bucket").items() if "NotificationConfiguration" in p)]:
            for bucket in references(props.get("BucketName")):
                for target in self.targets(props.get("NotificationConfiguration")):
                    graph.edge(self.ids.get(bucket), self.ids.get(target), "object created")
        for props in stack.of_type("AWS::CloudWatch::Alarm").values():
            for topic in references([props.get("AlarmActions"), props.get("OKActions")]):
                graph.edge("alarms", self.ids.get(topic), "notify")
        for function in stack.functions.values():
            self.dependencies(function)

    def authorizers(self) -> None:
        for props in self.stack.of_type("AWS::ApiGatewayV2::Authorizer").values():
            for api in references(props.get("ApiId")):
                for pool in self.of_kind(props.get("JwtConfiguration"), "AWS::Cognito::UserPool"):
                    self.graph.edge(self.ids.get(api), self.ids.get(pool), f"{props.get('AuthorizerType')} authorizer")
        for props in self.stack.of_type("AWS::ApiGateway::Authorizer").values():
            for api in references(props.get("RestApiId")):
                for pool in self.of_kind(props.get("ProviderARNs"), "AWS::Cognito::UserPool"):
                    self.graph.edge(self.ids.get(api), self.ids.get(pool), "Cognito authorizer")

    def dependencies(self, function: Function) -> None:
        """Function → what its environment names and its role may use, labelled read / write."""
        consumed = {source for source, target, _ in self.stack.event_sources() if target == function.logical_id}
        props = self.stack.resources[function.logical_id]["Properties"]
        access: dict[str, set[str]] = {target: set() for target in references(props.get("Environment"))}
        for statement in self.stack.policy_statements(function.logical_id):
            if statement.get("Effect", "Allow") != "Allow":
                continue
            actions = [str(action) for action in listed(statement.get("Action"))]
            targets = references(statement.get("Resource"))
            for node, (_, _, prefix) in GROUPED.items():
                if prefix and any(action.startswith(prefix) for action in actions):
                    targets.add(node)
            for target in targets:
                access.setdefault(target, set()).update(verb(action) for action in actions)
        access = {target: verbs - {"metadata"} or verbs for target, verbs in access.items()}
        for target, verbs in sorted(access.items()):
            if target in consumed:
                continue
            node = target if target in GROUPED else self.ids.get(self.api_of(target) or target)
            self.graph.edge(self.ids[function.logical_id], node, "/".join(sorted(verbs)))
        if function.tracing:
            self.graph.edge(self.ids[function.logical_id], "xray", "", dashed=True)

    def targets(self, value: Any) -> list[str]:
        """The drawn resources a value refers to (aliases and versions count as their function)."""
        found: set[str] = set()
        for target in references(value):
            function = self.stack.function_of(target)
            found.add(function or target)
        return sorted(target for target in found if target in self.ids)

    def of_kind(self, value: Any, kind: str) -> list[str]:
        return sorted(target for target in references(value) if self.stack.type_of(target) == kind)

    def api_of(self, logical_id: str) -> str:
        """A stage or deployment stands for its API; other resources for themselves."""
        props = self.stack.resources.get(logical_id, {}).get("Properties", {})
        for key in ("RestApiId", "ApiId"):
            for api in references(props.get(key)):
                return api
        return logical_id


def function_label(function: Function) -> str:
    if function.cold_start == "provisioned":
        extra = f"–{function.provisioned_max}" if function.provisioned_max > function.provisioned else ""
        plan = f"provisioned concurrency {function.provisioned}{extra}"
    elif function.cold_start == "warmup":
        plan = f"warmup every {function.warmup_rate_minutes:g} min × {function.warmup_concurrency}"
    else:
        plan = {"snapstart": "SnapStart", "none": "on demand"}[function.cold_start]
    runtime = " · ".join(filter(None, [function.runtime, function.architecture, f"{function.memory_mb} MB"]))
    return f"λ {function.name}<br/>{runtime}<br/>{plan}"


def grouped_label(kind: str, word: str, found: dict[str, Any]) -> str:
    if kind == "AWS::Logs::LogGroup":
        days = sorted({props.get("RetentionInDays") for props in found.values()}, key=lambda d: (d is None, d))
        retention = ", ".join("never expire" if d is None else f"{d} d" for d in days)
        return f"{word}<br/>{len(found)} log groups · {retention}"
    return f"{word} · {len(found)}"


def verb(action: str) -> str:
    name = action.split(":", 1)[-1]
    if name == "*":
        return "all"
    if name.startswith(METADATA_VERBS):
        return "metadata"
    return "write" if name.startswith(WRITE_VERBS) else "read"


def render(value: Any) -> str:
    """A template string with intrinsic functions reduced to their literal parts (for labels only)."""
    if isinstance(value, str):
        return value
    if is_object(value) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(part) for part in parts)
    return ""


def escape(label: str) -> str:
    return label.replace('"', "#quot;")


def mermaid(stack: StackTemplate) -> str:
    """The stack's diagram as a Mermaid flowchart (deterministic: same template, same text)."""
    graph = Drawing(stack).draw()
    lines = ["flowchart LR"]
    outside = [node for node in graph.nodes if node not in graph.in_vpc]
    lines += [f"  {node}{graph.nodes[node]}" for node in outside]
    if graph.in_vpc:
        subnets = len(stack.of_type("AWS::EC2::Subnet"))
        flow_logs = " · flow logs" if stack.of_type("AWS::EC2::FlowLog") else ""
        lines.append(f'  subgraph vpc["VPC · {subnets} subnets{flow_logs}"]')
        lines += [f"    {node}{graph.nodes[node]}" for node in graph.in_vpc]
        lines.append("  end")
    for source, target, label, dashed in sorted(graph.edges):
        arrow = "-.->" if dashed else "-->"
        lines.append(f"  {source} {arrow}{f'|{escape(label)}|' if label else ''} {target}")
    return "\n".join(lines)


def blocks(templates: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``diagram:<stack>`` → the stack's Mermaid code block."""
    return {f"diagram:{name}": f"```mermaid\n{mermaid(StackTemplate(name, template))}\n```"
            for name, template in templates.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("cdk_out", type=Path, help="a synthesized cloud assembly (cdk.out)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--update", nargs="+", type=Path, metavar="FILE", help="rewrite the marked blocks")
    mode.add_argument("--check", nargs="+", type=Path, metavar="FILE", help="exit 1 when a marked block is stale")
    args = parser.parse_args(argv)
    generated = blocks(load_templates(args.cdk_out))
    if args.update:
        for path in args.update:
            text = path.read_text()
            path.write_text(markdown.update(text, generated))
            print(f"{path}: {', '.join(markdown.marked(text, generated)) or 'no <!-- diagram:<stack> --> block'}")
        return 0
    if args.check:
        outdated = {str(path): markdown.stale(path.read_text(), generated) for path in args.check}
        for path, tags in outdated.items():
            if tags:
                print(f"{path}: stale {', '.join(tags)}; run `make diagram`", file=sys.stderr)
        return 1 if any(outdated.values()) else 0
    for tag, block in generated.items():
        print(f"<!-- {tag} -->\n{block}\n<!-- /{tag} -->\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
