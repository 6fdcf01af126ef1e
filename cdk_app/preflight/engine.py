"""The preflight engine: AWS's deploy-time rules run over a synthesized CloudFormation template.

Plain Python, no CDK: a rule reads one resource of the resolved template (and the rest of the
template where a rule spans resources) and yields a :class:`Violation` for each problem. Values
CloudFormation only knows at deploy time (``Ref``, ``Fn::GetAtt``, imports) are skipped, never
guessed, except the pseudo parameters whose shape is known (an account id has 12 digits).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from cdk_app.shapes import is_array, is_mapping

Severity = Literal["error", "warning"]

#: Stand-ins for pseudo parameters where a rule needs a value's shape (its length, its characters).
PSEUDO = {"AWS::AccountId": "123456789012", "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
          "AWS::Region": "ap-southeast-5", "AWS::NoValue": ""}
#: What an unknown part of a string is rendered as by :func:`shape`.
UNKNOWN = "\N{REPLACEMENT CHARACTER}"


@dataclass(frozen=True)
class Violation:
    """One problem: what was found, how to fix it, and AWS's own words when they are more precise than the rule's."""

    value: str
    fix: str
    message: str | None = None
    location: str | None = None  # e.g. "Properties/AuthorizationScopes"


@dataclass(frozen=True)
class Rule:
    """A deploy-time rule of an AWS service, with where it was learned."""

    id: str
    types: tuple[str, ...]
    message: str  # what AWS answers (or does) when the rule is broken
    source: str  # the documentation page or public issue the rule comes from
    check: Callable[[Resource, Template], Iterable[Violation]]
    severity: Severity = "error"

    @property
    def summary(self) -> str:
        return (self.check.__doc__ or self.message).strip().splitlines()[0]


#: Every registered rule by id, in registration order.
RULES: dict[str, Rule] = {}


_Check = TypeVar("_Check", bound="Callable[[Resource, Template], Iterable[Violation]]")


def rule(id: str, *types: str, message: str, source: str, severity: Severity = "error"
         ) -> Callable[[_Check], _Check]:
    """Register ``check`` as rule ``id`` for resources of ``types``."""

    def register(check: _Check) -> _Check:
        if id in RULES:
            raise ValueError(f"preflight rule {id} is registered twice")
        RULES[id] = Rule(id, types, message, source, check, severity)
        return check

    return register


@dataclass(frozen=True)
class Resource:
    """One resource of the template: its logical id, type, properties and construct path."""

    id: str
    type: str
    props: Mapping[str, Any]
    depends_on: tuple[str, ...] = ()
    deletion_policy: str | None = None
    path: str = ""
    update_policy: Mapping[str, Any] | None = None  # e.g. an alias's CodeDeployLambdaAliasUpdate

    @classmethod
    def of(cls, logical_id: str, body: Mapping[str, Any], path: str | None = None) -> Resource:
        """A template resource; its construct path from ``path``, its metadata, or else its logical id."""
        depends = body.get("DependsOn") or ()
        return cls(logical_id, body.get("Type", ""), as_mapping(body.get("Properties")),
                   (depends,) if isinstance(depends, str) else tuple(as_list(depends)), body.get("DeletionPolicy"),
                   path or as_mapping(body.get("Metadata")).get("aws:cdk:path", logical_id), body.get("UpdatePolicy"))

    def get(self, *keys: str | int, default: Any = None) -> Any:
        """A nested property, e.g. ``get("Environment", "Variables")``, or ``default``."""
        value: Any = self.props
        for key in keys:
            if is_mapping(value) and isinstance(key, str) and key in value:
                value = value[key]
            elif is_array(value) and isinstance(key, int) and -len(value) <= key < len(value):
                value = value[key]
            else:
                return default
        return value

    def mapping(self, *keys: str | int) -> Mapping[str, Any]:
        """A nested property that is a JSON object (an intrinsic function is one too), else an empty one."""
        return as_mapping(self.get(*keys))

    def mappings(self, *keys: str | int) -> list[Mapping[str, Any]]:
        """The JSON objects of a nested list property (a lone object counts as a list of one)."""
        return mappings(self.get(*keys))


class Template:
    """A synthesized template, with the lookups rules need: by type, by reference, by dependency."""

    def __init__(self, body: Mapping[str, Any], *, name: str = "", region: str | None = None,
                 paths: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.region = region
        bodies: Mapping[str, Any] = body.get("Resources") or {}
        self.resources: dict[str, Resource] = {lid: Resource.of(lid, r, (paths or {}).get(lid))
                                               for lid, r in bodies.items()}
        self._edges: dict[str, set[str]] = {}

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type in types]

    def target(self, value: Any, *types: str) -> Resource | None:
        """The resource ``value`` refers to (``Ref`` or ``Fn::GetAtt``), if it is in this template and of ``types``."""
        logical_id = target_id(value)
        found = self.resources.get(logical_id) if logical_id else None
        return found if found is not None and (not types or found.type in types) else None

    def referring(self, resource: Resource, *types: str) -> Iterator[Resource]:
        """Resources of ``types`` whose properties refer to ``resource``."""
        for other in self.of_type(*types):
            if resource.id in referenced_ids(other.props):
                yield other

    def edges(self, logical_id: str) -> set[str]:
        if logical_id not in self._edges:
            resource = self.resources.get(logical_id)
            self._edges[logical_id] = set() if resource is None else \
                (referenced_ids(resource.props) | set(resource.depends_on)) & self.resources.keys()
        return self._edges[logical_id]

    def depends(self, resource: Resource, on: str) -> bool:
        """Whether CloudFormation creates ``on`` before ``resource`` (a reference or DependsOn, directly or not)."""
        seen: set[str] = set()
        todo = [resource.id]
        while todo:
            for nxt in self.edges(todo.pop()) - seen:
                if nxt == on:
                    return True
                seen.add(nxt)
                todo.append(nxt)
        return False


@dataclass(frozen=True)
class Finding:
    """A violation of a rule by one resource of one template."""

    rule: Rule
    resource: Resource
    violation: Violation
    template: str = ""

    @property
    def message(self) -> str:
        return self.violation.message or self.rule.message

    def line(self) -> str:
        """The one line a reader needs: rule, construct path, value, what AWS says, and the fix."""
        return f"[{self.rule.id}] {self.resource.path}: {self.violation.value}. AWS: {self.message}. " \
               f"Fix: {self.violation.fix}."


#: The pseudo resource type a template's stack is checked as (its name is ``StackName``).
STACK = "AWS::CloudFormation::Stack"


def check_template(body: Mapping[str, Any], *, name: str = "", region: str | None = None, stack_path: str = "",
                   paths: Mapping[str, str] | None = None, rules: Iterable[Rule] | None = None) -> list[Finding]:
    """Every finding of ``rules`` (default: all registered) in one template (of stack ``name``, when given).

    ``paths`` maps logical ids to construct paths, where the template's metadata lacks them.
    """
    template = Template(body, name=name, region=region, paths=paths)
    stack = [Resource(name, STACK, {"StackName": name}, path=stack_path or name)] if name else []
    findings: list[Finding] = []
    for r in (RULES.values() if rules is None else rules):
        resources = list(template.resources.values()) if "*" in r.types else template.of_type(*r.types)
        for resource in resources + (stack if STACK in r.types else []):
            findings += [Finding(r, resource, v, name) for v in r.check(resource, template)]
    return findings


# --- intrinsic functions ---------------------------------------------------------------------------

def is_intrinsic(value: Any) -> bool:
    return is_mapping(value) and len(value) == 1 and next(iter(value)) in INTRINSICS


INTRINSICS = frozenset({"Ref", "Fn::GetAtt", "Fn::Join", "Fn::Sub", "Fn::Select", "Fn::Split", "Fn::If",
                        "Fn::ImportValue", "Fn::FindInMap", "Fn::GetAZs", "Fn::Base64", "Fn::Cidr",
                        "Fn::Transform", "Fn::ToJsonString", "Fn::Length", "Condition"})


def known(value: Any) -> bool:
    """Whether ``value`` holds no intrinsic function anywhere (its value is known at synth)."""
    if is_intrinsic(value):
        return False
    if is_mapping(value):
        return all(known(v) for v in value.values())
    if is_array(value):
        return all(known(v) for v in value)
    return True


def target_id(value: Any) -> str | None:
    """The logical id of ``{"Ref": id}`` or ``{"Fn::GetAtt": [id, attr]}``."""
    if is_mapping(value) and len(value) == 1:
        ref = value.get("Ref")
        if isinstance(ref, str) and not ref.startswith("AWS::"):
            return ref
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return att[0] if is_array(att) else str(att).split(".")[0]
    return None


_SUB_NAME = re.compile(r"\$\{([A-Za-z0-9_:]+)(?:\.[A-Za-z0-9_.]+)?\}")


def referenced_ids(value: Any) -> set[str]:
    """Every logical id ``value`` refers to, at any depth (Ref, GetAtt, and ``${Name}`` in Fn::Sub)."""
    found: set[str] = set()
    if is_mapping(value):
        if (logical_id := target_id(value)) is not None:
            found.add(logical_id)
        if "Fn::Sub" in value:
            text = _sub_text(value["Fn::Sub"]) or ""
            found |= {n for n in _SUB_NAME.findall(text) if not n.startswith("AWS::")}
        for v in value.values():
            found |= referenced_ids(v)
    elif is_array(value):
        for v in value:
            found |= referenced_ids(v)
    return found


def _sub_text(sub: Any) -> str | None:
    """The template string of an Fn::Sub argument (``"text"`` or ``["text", {variables}]``)."""
    text = sub if isinstance(sub, str) else sub[0] if is_array(sub) and sub else None
    return text if isinstance(text, str) else None


def shape(value: Any, pseudo: Mapping[str, str] = PSEUDO) -> str | None:
    """A string's value with unknown parts as :data:`UNKNOWN` and pseudo parameters as stand-ins; None if not a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    if is_mapping(value) and len(value) == 1:
        key, arg = next(iter(value.items()))
        if key == "Ref" and isinstance(arg, str) and arg in pseudo:
            return pseudo[arg]
        if key == "Fn::Join" and is_array(arg) and len(arg) == 2 and is_array(joined := arg[1]):
            parts = [shape(p, pseudo) for p in joined]
            return str(arg[0]).join(UNKNOWN if p is None else p for p in parts)
        if key == "Fn::Sub":
            text = _sub_text(arg)
            if text is not None:
                return _SUB_NAME.sub(lambda m: pseudo.get(m.group(1), UNKNOWN), text)
        if key in INTRINSICS:
            return UNKNOWN
    return None


def literal_text(value: Any, pseudo: Mapping[str, str] = PSEUDO) -> str | None:
    """``value`` as text when every part of it is known (pseudo parameters as their stand-ins), else None."""
    text = shape(value, pseudo)
    return text if text is not None and UNKNOWN not in text else None


def number(value: Any) -> float | None:
    """A literal number (CloudFormation accepts numbers as strings too), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


# --- narrowing a template's JSON values -------------------------------------------------------------
# A parsed template is JSON: objects (with string keys), lists, strings, numbers, booleans, null. Rules read it
# through these (and cdk_app.shapes' is_mapping/is_array), so each property is checked for its shape once.

def as_mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a property left out reads as empty)."""
    return value if is_mapping(value) else {}


def as_list(value: object) -> list[Any]:
    """``value`` as a list: itself if a list, nothing for None, else a list of the one value."""
    if value is None:
        return []
    return value if is_array(value) else [value]


def mappings(value: object) -> list[Mapping[str, Any]]:
    """The JSON objects of ``value`` read as a list (other entries, e.g. intrinsic-free strings, left out)."""
    return [v for v in as_list(value) if is_mapping(v)]


def statements(policy: Any) -> list[Mapping[str, Any]]:
    """The statements of a policy document (one statement may be given bare)."""
    if not is_mapping(policy):
        return []
    return mappings(policy.get("Statement"))


def allows(statement: Mapping[str, Any], action: str, *, service: str | None = None) -> bool:
    """Whether ``statement`` allows ``action`` (wildcards honoured), to ``service`` when given.

    A principal of ``"*"`` (or ``{"AWS": "*"}``) counts as allowing any service.
    """
    if statement.get("Effect") != "Allow":
        return False
    actions = [a for a in as_list(statement.get("Action")) if isinstance(a, str)]
    if not any(a == "*" or a.lower() == action.lower() or (a.endswith("*") and action.lower().startswith(a[:-1].lower()))
               for a in actions):
        return False
    if service is None:
        return True
    principal = statement.get("Principal")
    if principal == "*" or (is_mapping(principal) and "*" in as_list(principal.get("AWS"))):
        return True
    return is_mapping(principal) and service in as_list(principal.get("Service"))


def shown(value: Any, limit: int = 80) -> str:
    """A value as a reader would write it, shortened."""
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
