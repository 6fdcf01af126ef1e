"""Names, lengths and tags of every resource (the limits themselves are in :mod:`.limits`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cdk_app.preflight.engine import (
    Resource,
    Template,
    Violation,
    as_list,
    is_array,
    is_mapping,
    literal_text,
    mappings,
    rule,
    shown,
)
from cdk_app.settings.limits import MAX_TAGS, NAME_PROPERTIES, NAMES, tag_problem


def _values(value: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """(location, value) at ``path`` below ``value``; ``"*"`` walks every entry of a list."""
    if not path:
        yield "", value
        return
    head, rest = path[0], path[1:]
    if head == "*":
        for i, item in enumerate(as_list(value)):
            for where, found in _values(item, rest):
                yield f"/{i}{where}", found
    elif is_mapping(value) and head in value:
        for where, found in _values(value[head], rest):
            yield f"/{head}{where}", found


def _name_rule(kind: str) -> None:
    limit = NAMES[kind]
    places = [(resource_type, path) for resource_type, path, k in NAME_PROPERTIES if k == kind]

    def check(resource: Resource, template: Template) -> Iterator[Violation]:
        for resource_type, path in places:
            if resource.type != resource_type:
                continue
            for where, value in _values(resource.props, path):
                text = literal_text(value)
                if text is None or text.startswith("arn:"):
                    continue
                if (why := limit.problem(text)) is not None:
                    yield Violation(f"{'/'.join(path).replace('/*', '[]')}={shown(text)}", f"choose a name that fits: "
                                    f"{limit.allowed}, {limit.min_length} to {limit.max_length} characters",
                                    message=why, location=f"Properties{where}")

    check.__doc__ = f"{limit.what[0].upper()}{limit.what[1:]} fits the service's characters and length."
    rule(f"NAME-{kind.upper()}", *sorted({t for t, _ in places}),
         message=f"the name is refused as {limit.what}", source=limit.source)(check)


for _kind in dict.fromkeys(k for _, _, k in NAME_PROPERTIES):
    _name_rule(_kind)


def _tags(props: Mapping[str, Any]) -> Iterator[tuple[str, list[tuple[Any, Any]]]]:
    """Each tag property of a resource, as (property, [(key, value)])."""
    for name in ("Tags", "UserPoolTags"):
        tags = props.get(name)
        if is_mapping(tags):
            yield name, list(tags.items())
        elif is_array(tags):
            yield name, [(t.get("Key"), t.get("Value")) for t in mappings(tags)]


@rule("TAGS", "*", message="AWS refuses the tags (TagPolicyViolation / InvalidParameterValue on create)",
      source="https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html#tag-conventions")
def tags_fit(resource: Resource, template: Template) -> Iterator[Violation]:
    """Tags: at most 50, keys of 1-128 characters not starting with aws:, values of at most 256."""
    for prop, tags in _tags(resource.props):
        if len(tags) > MAX_TAGS:
            yield Violation(f"{prop} holds {len(tags)} tags", f"keep at most {MAX_TAGS} tags per resource",
                            message=f"a resource may carry at most {MAX_TAGS} tags", location=f"Properties/{prop}")
        for key, value in tags:
            key_text, value_text = literal_text(key), literal_text(value) if value is not None else ""
            if key_text is None or value_text is None:
                continue
            if (why := tag_problem(key_text, value_text)) is not None:
                yield Violation(f"{prop} {key_text}={shown(value_text, 40)}", "rename or shorten the tag", message=why,
                                location=f"Properties/{prop}")
