"""A synthesized stack as a local run reads it: the template, its assets, and its references resolved.

Everything comes from the cloud assembly (``cdk.out``), never from the CDK app's Python
objects, so any app's assembly can run: ``manifest.json`` names the stacks (also inside
nested assemblies of Stages), each Lambda function and layer names its asset folder in
its ``aws:asset:path`` metadata, and :class:`Resolver` evaluates CloudFormation's
intrinsic functions against the physical values of the local stand-ins.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdk_app.shapes import is_array, is_mapping, is_object

#: moto's default account; its ARNs and queue URLs name it.
ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"


class LocalError(RuntimeError):
    """Something in the assembly or on this machine stops the local run; the message says what to do."""


@dataclass(frozen=True)
class StackTemplate:
    """One stack of a cloud assembly."""

    name: str
    folder: Path
    template: Mapping[str, Any]
    region: str = DEFAULT_REGION
    account: str = ACCOUNT

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        return self.template.get("Resources", {})

    def of_type(self, *types: str) -> dict[str, Mapping[str, Any]]:
        """The resources of these types, by logical id, in template order."""
        return {logical: r for logical, r in self.resources.items() if r.get("Type") in types}

    def properties(self, logical_id: str) -> Mapping[str, Any]:
        return self.resources[logical_id].get("Properties", {})

    def path_of(self, logical_id: str) -> str:
        """The construct path CDK recorded (``stack/Api/Function/Resource``), or the logical id."""
        return self.resources[logical_id].get("Metadata", {}).get("aws:cdk:path", logical_id)

    def asset(self, logical_id: str, work: Path) -> Path:
        """The folder holding the asset of a function's code or a layer's content.

        CDK records it in ``aws:asset:path``; without that metadata the S3 key names it
        (``asset.<hash>``). A zip file asset is extracted once into ``work``.
        """
        resource = self.resources[logical_id]
        relative = resource.get("Metadata", {}).get("aws:asset:path")
        if relative is None:
            content: object = resource.get("Properties", {}).get("Code") or resource.get("Properties", {}).get("Content")
            key = content.get("S3Key") if is_mapping(content) else None
            if not isinstance(key, str):
                raise LocalError(f"{logical_id}: no asset to run (no aws:asset:path metadata and no S3Key); "
                                 "synthesize with the CDK CLI, which records asset paths")
            relative = f"asset.{key.removesuffix('.zip')}"
        path = self.folder / relative
        if path.is_dir():
            return path
        zipped = path if path.suffix == ".zip" else path.with_name(path.name + ".zip")
        if zipped.is_file():
            target = work / "assets" / zipped.name.removesuffix(".zip")
            if not target.is_dir():
                staging = target.with_name(target.name + ".partial")
                with zipfile.ZipFile(zipped) as archive:
                    archive.extractall(staging)
                staging.rename(target)
            return target
        raise LocalError(f"{logical_id}: its asset {path} is missing; synthesize again with bundling on "
                         "(not -c skip_bundling=true)")


def _stacks_in(folder: Path) -> Iterator[StackTemplate]:
    manifest_file = folder / "manifest.json"
    if not manifest_file.is_file():
        raise LocalError(f"{folder} is not a cloud assembly (no manifest.json); run `npx cdk synth` first, "
                         "or pass the folder it wrote (cdk.out)")
    for artifact_id, artifact in json.loads(manifest_file.read_text()).get("artifacts", {}).items():
        properties = artifact.get("properties", {})
        if artifact.get("type") == "cdk:cloud-assembly":  # a Stage: its stacks live in a nested assembly
            yield from _stacks_in(folder / properties["directoryName"])
        elif artifact.get("type") == "aws:cloudformation:stack":
            account, region = (artifact.get("environment", "").removeprefix("aws://").split("/") + ["", ""])[:2]
            template = json.loads((folder / properties["templateFile"]).read_text())
            yield StackTemplate(
                name=properties.get("stackName") or artifact.get("displayName") or artifact_id,
                folder=folder, template=template,
                region=region if region and not region.startswith("unknown") else DEFAULT_REGION,
                account=account if account.isdigit() else ACCOUNT,
            )


def read_stack(assembly: Path | str, name: str | None = None) -> StackTemplate:
    """The stack ``name`` of the assembly in ``assembly`` (the only one when ``name`` is None)."""
    stacks = list(_stacks_in(Path(assembly).resolve()))
    if name is None:
        if len(stacks) == 1:
            return stacks[0]
        raise LocalError(f"{assembly} holds {len(stacks)} stacks; name one: "
                         + ", ".join(s.name for s in stacks))
    for stack in stacks:
        if stack.name == name:
            return stack
    raise LocalError(f"no stack {name!r} in {assembly}; it holds: " + ", ".join(s.name for s in stacks))


# --- physical values -----------------------------------------------------------------------------

@dataclass
class Physical:
    """What ``Ref`` and ``Fn::GetAtt`` give for one resource."""

    ref: Any
    attributes: dict[str, Any] = field(default_factory=dict)


def local_name(stack: str, logical_id: str, *, limit: int = 64, lower: bool = False) -> str:
    """A physical name in CloudFormation's style (``<stack>-<logical id>``), cut to ``limit`` with a hash."""
    name = f"{stack}-{logical_id}"
    if lower:
        name = re.sub(r"[^a-z0-9.-]", "-", name.lower())
    if len(name) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:limit - 9]}-{digest}"
    return name


def short_id(logical_id: str, length: int = 10) -> str:
    """A stable API Gateway-style id (lowercase letters and digits) for a logical id."""
    return hashlib.sha256(logical_id.encode()).hexdigest()[:length]


class Resolver:
    """Evaluates intrinsic functions in a template against the local resources' physical values.

    ``physical`` is filled as the local stand-ins are created (a queue's URL, a user pool's
    id); a resource nobody made locally resolves to a stable placeholder derived from its
    logical id, and :attr:`placeholders` records which were used.
    """

    def __init__(self, stack: StackTemplate) -> None:
        self.stack = stack
        self.physical: dict[str, Physical] = {}
        self.placeholders: set[str] = set()
        self.pseudo: dict[str, Any] = {
            "AWS::Region": stack.region, "AWS::AccountId": stack.account, "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": stack.name,
            "AWS::StackId": f"arn:aws:cloudformation:{stack.region}:{stack.account}:stack/{stack.name}/local",
            "AWS::NotificationARNs": [],
        }
        self.parameters = {name: p.get("Default") for name, p in stack.template.get("Parameters", {}).items()}

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (f"arn:aws:{service}:{self.stack.region if region else ''}:"
                f"{self.stack.account if account else ''}:{resource}")

    def ref(self, logical_id: str) -> Any:
        if logical_id in self.pseudo:
            return self.pseudo[logical_id]
        if logical_id in self.parameters:
            return self.parameters[logical_id]
        if logical_id in self.physical:
            return self.physical[logical_id].ref
        if logical_id not in self.stack.resources:
            raise LocalError(f"Ref to {logical_id!r}, which is not in {self.stack.name}")
        self.placeholders.add(logical_id)
        resource_type = self.stack.resources[logical_id]["Type"]
        if resource_type in _REF_IS_ARN:  # keep the shape: templates split such references on ':'
            service, kind = _REF_IS_ARN[resource_type]
            return self.arn(service, f"{kind}{local_name(self.stack.name, logical_id)}")
        return local_name(self.stack.name, logical_id)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        found = self.physical.get(logical_id)
        if found is not None and attribute in found.attributes:
            return found.attributes[attribute]
        if logical_id not in self.stack.resources:
            raise LocalError(f"Fn::GetAtt of {logical_id!r}, which is not in {self.stack.name}")
        self.placeholders.add(logical_id)
        if attribute == "Arn":
            service = self.stack.resources[logical_id]["Type"].split("::")[1].lower()
            return self.arn(service, local_name(self.stack.name, logical_id))
        return f"{local_name(self.stack.name, logical_id)}.{attribute}"

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.stack.template.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function evaluated (``AWS::NoValue`` entries removed)."""
        if is_array(value):
            return [v for v in (self.resolve(item) for item in value) if v is not _NO_VALUE]
        if not is_object(value):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            function = _FUNCTIONS.get(key)
            if function is not None:
                return function(self, argument)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not _NO_VALUE}

    def text(self, value: Any) -> str:
        """A resolved scalar as CloudFormation turns it into text (environment variables, names)."""
        resolved = self.resolve(value)
        if isinstance(resolved, bool):
            return str(resolved).lower()
        return resolved if isinstance(resolved, str) else json.dumps(resolved) if isinstance(
            resolved, dict | list) else str(resolved)


_NO_VALUE = object()
#: Resource types whose ``Ref`` is an ARN.
_REF_IS_ARN = {"AWS::SNS::Topic": ("sns", ""), "AWS::SecretsManager::Secret": ("secretsmanager", "secret:"),
               "AWS::IAM::ManagedPolicy": ("iam", "policy/"), "AWS::Lambda::LayerVersion": ("lambda", "layer:"),
               "AWS::StepFunctions::StateMachine": ("states", "stateMachine:")}


def _ref(resolver: Resolver, argument: str) -> Any:
    return _NO_VALUE if argument == "AWS::NoValue" else resolver.ref(argument)


def _get_att(resolver: Resolver, argument: Any) -> Any:
    logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
    return resolver.get_att(logical_id, resolver.resolve(attribute))


def _join(resolver: Resolver, argument: list[Any]) -> str:
    separator, items = argument
    return separator.join(resolver.text(item) for item in resolver.resolve(items))


def _select(resolver: Resolver, argument: list[Any]) -> Any:
    index, items = resolver.resolve(argument)
    return items[int(index)]


def _split(resolver: Resolver, argument: list[Any]) -> list[str]:
    separator, text = argument
    return resolver.text(text).split(separator)


def _sub(resolver: Resolver, argument: Any) -> str:
    template: str
    variables: dict[str, Any]
    template, variables = (argument, {}) if isinstance(argument, str) else argument
    values = {name: resolver.text(v) for name, v in variables.items()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in values:
            return values[name]
        if "." in name:
            return resolver.text({"Fn::GetAtt": name.split(".", 1)})
        return resolver.text({"Ref": name})

    return re.sub(r"\$\{([^}]+)\}", replace, template)


def _if(resolver: Resolver, argument: list[Any]) -> Any:
    name, when_true, when_false = argument
    return resolver.resolve(when_true if resolver.condition(name) else when_false)


def _find_in_map(resolver: Resolver, argument: list[Any]) -> Any:
    name, top, second = resolver.resolve(argument)
    return resolver.stack.template["Mappings"][name][top][second]


def _import_value(resolver: Resolver, argument: Any) -> Any:
    raise LocalError(f"Fn::ImportValue {resolver.resolve(argument)!r}: another stack's export cannot be "
                     "resolved locally; pass the value to this stack instead")


def _base64(resolver: Resolver, argument: Any) -> str:
    import base64

    return base64.b64encode(resolver.text(argument).encode()).decode()


_FUNCTIONS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::Sub": _sub,
    "Fn::If": _if,
    "Fn::FindInMap": _find_in_map,
    "Fn::ImportValue": _import_value,
    "Fn::Base64": _base64,
    "Fn::GetAZs": lambda resolver, _: [f"{resolver.stack.region}{z}" for z in "abc"],
    "Fn::Equals": lambda resolver, argument: resolver.resolve(argument[0]) == resolver.resolve(argument[1]),
    "Fn::Not": lambda resolver, argument: not resolver.resolve(argument[0]),
    "Fn::And": lambda resolver, argument: all(resolver.resolve(a) for a in argument),
    "Fn::Or": lambda resolver, argument: any(resolver.resolve(a) for a in argument),
    "Condition": lambda resolver, argument: resolver.condition(argument),
}
