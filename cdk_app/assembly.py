"""Reads a synthesized cloud assembly (``cdk.out``): what each stack's template turns on, for any CDK app.

``make diagram`` and ``make cost`` start here, from templates rather than from this project's settings
objects, so they describe whatever the app synthesized: the functions and what invokes them, their cold-start
strategy (provisioned concurrency on an alias, SnapStart, a scheduled warmup invoke), and which resource
refers to which (``Ref``, ``Fn::GetAtt``, ``Fn::Sub``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cdk_app.shapes import Manifest, is_array, is_object

#: CDK appends 8 hex digits of a path hash to logical ids; without them the name reads like the construct.
HASH_SUFFIX = re.compile(r"[0-9A-F]{8}$")
SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")
RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
MINUTES_PER_UNIT = {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}


def load_templates(cdk_out: Path | str) -> dict[str, dict[str, Any]]:
    """Stack name → template, for every CloudFormation stack in the assembly's manifest, in its order."""
    cdk_out = Path(cdk_out)
    manifest_path = cdk_out / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path} not found: synthesize first (npx cdk synth -o {cdk_out})")
    manifest: Manifest = json.loads(manifest_path.read_text())
    templates: dict[str, dict[str, Any]] = {}
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") == "aws:cloudformation:stack":
            properties = artifact.get("properties", {})
            name = properties.get("stackName", artifact_id)
            templates[name] = json.loads((cdk_out / properties["templateFile"]).read_text())
    return templates


def references(value: Any) -> set[str]:
    """The logical ids (and pseudo parameters) a template value refers to."""
    found: set[str] = set()
    if is_object(value):
        if "Ref" in value and isinstance(value["Ref"], str):
            found.add(value["Ref"])
        if "Fn::GetAtt" in value:
            target: object = value["Fn::GetAtt"]
            found.add(str(target[0]) if is_array(target) else str(target).split(".")[0])
        if "Fn::Sub" in value:
            text: str = value["Fn::Sub"][0] if is_array(value["Fn::Sub"]) else value["Fn::Sub"]
            found.update(SUB_REFERENCE.findall(text))
        for item in value.values():
            found |= references(item)
    elif is_array(value):
        for item in value:
            found |= references(item)
    return {name for name in found if not name.startswith("AWS::")}


def short_name(logical_id: str) -> str:
    """``ApiFunction6BF808ED`` → ``ApiFunction``: the construct path CDK hashed into the id."""
    return HASH_SUFFIX.sub("", logical_id) or logical_id


def listed(value: Any) -> list[Any]:
    if is_array(value):
        return value
    return [] if value is None else [value]


@dataclass(frozen=True)
class Function:
    """A Lambda function of the app (not a custom resource's provider) and what shapes its bill and start."""

    logical_id: str
    memory_mb: int
    architecture: str
    runtime: str
    timeout_s: int
    tracing: bool
    in_vpc: bool
    ephemeral_mb: int
    snap_start: bool
    provisioned: int
    provisioned_max: int
    target_utilization: float | None
    warmup_rate_minutes: float | None
    warmup_concurrency: int

    @property
    def name(self) -> str:
        return short_name(self.logical_id)

    @property
    def cold_start(self) -> str:
        """One of ``provisioned``, ``snapstart``, ``warmup``, ``none``."""
        if self.provisioned:
            return "provisioned"
        if self.snap_start:
            return "snapstart"
        return "warmup" if self.warmup_rate_minutes else "none"


class StackTemplate:
    """One synthesized template and the questions diagram and cost ask of it."""

    def __init__(self, name: str, template: Mapping[str, Any]) -> None:
        self.name = name
        self.resources: dict[str, dict[str, Any]] = template.get("Resources", {})

    def of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        """Logical id → properties of every resource of these types, in template order."""
        return {logical_id: resource.get("Properties", {}) for logical_id, resource in self.resources.items()
                if resource.get("Type") in types}

    def type_of(self, logical_id: str) -> str | None:
        return self.resources.get(logical_id, {}).get("Type")

    @cached_property
    def providers(self) -> set[str]:
        """Functions that serve custom resources (their ServiceToken): CDK's machinery, not the app."""
        return {target for resource in self.resources.values()
                for target in references(resource.get("Properties", {}).get("ServiceToken"))
                if self.type_of(target) == "AWS::Lambda::Function"}

    def function_of(self, logical_id: str) -> str | None:
        """The function a function, version or alias id stands for."""
        kind = self.type_of(logical_id)
        if kind == "AWS::Lambda::Function":
            return logical_id
        if kind in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
            for target in references(self.resources[logical_id]["Properties"].get("FunctionName")):
                return self.function_of(target)
        return None

    def functions_in(self, value: Any) -> list[str]:
        """The app functions a value refers to (through aliases and versions too), in a stable order."""
        return sorted({function for target in references(value) if (function := self.function_of(target))
                       and function not in self.providers})

    @cached_property
    def functions(self) -> dict[str, Function]:
        """The app's functions, with their cold-start plan read from aliases, scaling targets and rules."""
        aliases = self.of_type("AWS::Lambda::Alias")
        provisioned = {self.function_of(alias_id): props.get("ProvisionedConcurrencyConfig", {}).get(
            "ProvisionedConcurrentExecutions", 0) for alias_id, props in aliases.items()}
        scaling = self._provisioned_scaling(aliases)
        warmups = self._scheduled_invokes()
        found: dict[str, Function] = {}
        for logical_id, props in self.of_type("AWS::Lambda::Function").items():
            if logical_id in self.providers:
                continue
            minimum = int(provisioned.get(logical_id) or 0)
            maximum, utilization = scaling.get(logical_id, (minimum, None))
            rate, concurrency = warmups.get(logical_id, (None, 0))
            found[logical_id] = Function(
                logical_id=logical_id, memory_mb=int(props.get("MemorySize", 128)),
                architecture=(props.get("Architectures") or ["x86_64"])[0], runtime=str(props.get("Runtime", "")),
                timeout_s=int(props.get("Timeout", 3)),
                tracing=props.get("TracingConfig", {}).get("Mode") == "Active", in_vpc="VpcConfig" in props,
                ephemeral_mb=int(props.get("EphemeralStorage", {}).get("Size", 512)),
                snap_start=props.get("SnapStart", {}).get("ApplyOn") == "PublishedVersions",
                provisioned=minimum, provisioned_max=max(minimum, maximum), target_utilization=utilization,
                warmup_rate_minutes=rate, warmup_concurrency=concurrency)
        return found

    def _provisioned_scaling(self, aliases: dict[str, Any]) -> dict[str, tuple[int, float | None]]:
        """Function → (max provisioned concurrency, target utilization) from Application Auto Scaling."""
        targets: dict[str, tuple[str, int]] = {}
        for target_id, props in self.of_type("AWS::ApplicationAutoScaling::ScalableTarget").items():
            if props.get("ScalableDimension") != "lambda:function:ProvisionedConcurrency":
                continue
            for alias_id in references(props.get("ResourceId")) & set(aliases):
                if function := self.function_of(alias_id):
                    targets[target_id] = (function, int(props.get("MaxCapacity", 0)))
        found: dict[str, tuple[int, float | None]] = {function: (maximum, None) for function, maximum in
                                                      targets.values()}
        for props in self.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values():
            for target_id in references(props.get("ScalingTargetId")) & set(targets):
                function, maximum = targets[target_id]
                value = props.get("TargetTrackingScalingPolicyConfiguration", {}).get("TargetValue")
                found[function] = (maximum, float(value) if value is not None else None)
        return found

    def _scheduled_invokes(self) -> dict[str, tuple[float, int]]:
        """Function → (minutes between runs, instances warmed) of schedule rules that invoke it."""
        found: dict[str, tuple[float, int]] = {}
        for props in self.of_type("AWS::Events::Rule").values():
            minutes = rate_minutes(props.get("ScheduleExpression"))
            if minutes is None or props.get("State", "ENABLED") != "ENABLED":
                continue
            for target in props.get("Targets", []):
                for function in self.functions_in(target.get("Arn")):
                    found[function] = (minutes, concurrency_in(target.get("Input")))
        return found

    @cached_property
    def entry_points(self) -> dict[str, list[str]]:
        """API id → the functions its integrations invoke (HTTP and REST APIs)."""
        found: dict[str, set[str]] = {}
        for props in self.of_type("AWS::ApiGatewayV2::Integration").values():
            for api in references(props.get("ApiId")):
                found.setdefault(api, set()).update(self.functions_in(props.get("IntegrationUri")))
        for props in self.of_type("AWS::ApiGateway::Method").values():
            for api in references(props.get("RestApiId")):
                found.setdefault(api, set()).update(self.functions_in(props.get("Integration", {}).get("Uri")))
        for api in [*self.of_type("AWS::ApiGatewayV2::Api"), *self.of_type("AWS::ApiGateway::RestApi")]:
            found.setdefault(api, set())
        return {api: sorted(functions) for api, functions in found.items()}

    def event_sources(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(source id, function id, mapping properties) of every event source mapping."""
        for props in self.of_type("AWS::Lambda::EventSourceMapping").values():
            for function in self.functions_in(props.get("FunctionName")):
                for source in sorted(references(props.get("EventSourceArn"))):
                    yield source, function, props

    def policy_statements(self, function_id: str) -> list[dict[str, Any]]:
        """Every statement of the policies attached to a function's role."""
        roles = references(self.resources[function_id]["Properties"].get("Role"))
        return [statement for props in self.of_type("AWS::IAM::Policy").values()
                if references(props.get("Roles")) & roles
                for statement in listed(props.get("PolicyDocument", {}).get("Statement"))]


def rate_minutes(expression: Any) -> float | None:
    """Minutes between runs of a ``rate(...)`` schedule (``cron(...)`` and others: None)."""
    match = RATE.match(expression) if isinstance(expression, str) else None
    return int(match.group(1)) * MINUTES_PER_UNIT[match.group(2)] if match else None


def concurrency_in(payload: Any) -> int:
    """How many instances a warmup payload asks for (a ``concurrency`` key anywhere in its JSON), else 1."""
    try:
        document = json.loads(payload) if isinstance(payload, str) else None
    except ValueError:
        return 1

    def search(value: Any) -> int | None:
        if is_object(value):
            count = value.get("concurrency")
            if isinstance(count, int) and count > 0:
                return count
            return next((found for item in value.values() if (found := search(item))), None)
        return None

    return search(document) or 1
