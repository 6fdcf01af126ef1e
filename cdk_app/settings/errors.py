"""How a settings problem is told: one line that names the key, the bad value, what is allowed and the fix.

What is allowed is read from the field's type and its ``Field`` constraints, so a message
cannot drift from the schema::

    environments.prod.function.memory_mb: 64 is not allowed (allowed: 128 to 10240). Fix: set a whole number from 128 to 10240.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo


class ConfigError(ValueError):
    """Invalid configuration: one line per problem (``problems``) saying where, what and how to fix it."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_BOUND_WORDS = {"gt": "more than", "ge": "at least", "lt": "less than", "le": "at most"}


def _unwrap(annotation: Any) -> Any:
    """``X`` for ``X | None``: a key that may be left out is described by what it holds."""
    kinds = [kind for kind in get_args(annotation) if kind is not type(None)]
    return kinds[0] if get_origin(annotation) in (Union, UnionType) and len(kinds) == 1 else annotation


def _target(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, FieldInfo | None]:
    """The type at ``loc`` in ``root`` and the field whose constraints apply there (none inside lists and dicts)."""
    annotation: Any = root
    field: FieldInfo | None = None
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field else None
        else:  # an entry of a list or a value of a dict
            field, annotation = None, (get_args(annotation) or (None,))[-1]
    return _unwrap(annotation), field


def _keys(model: Any) -> str:
    return ", ".join(sorted(model.model_fields)) if isinstance(model, type) and issubclass(model, BaseModel) else ""


def _closest(value: Any, options: Iterable[Any]) -> Any | None:
    """The option a mistyped ``value`` most likely meant, if one is close."""
    options = list(options)
    if isinstance(value, str):
        match = difflib.get_close_matches(value, [str(option) for option in options], n=1)
        return next((option for option in options if [str(option)] == match), None)
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (value, *options))
    return min(options, key=lambda option: abs(option - value)) if numbers and options else None


def _constraint(field: FieldInfo | None, name: str) -> Any | None:
    """A ``Field`` constraint (``ge``, ``pattern``, ``min_length``...), if ``field`` has it."""
    return next((getattr(item, name) for item in (field.metadata if field else ())
                 if getattr(item, name, None) is not None), None)


def _range(field: FieldInfo | None) -> tuple[str, str]:
    """The ``ge/gt/le/lt`` constraints of ``field`` as (what is allowed, the same after "set a number")."""
    limits = {name: limit for name in _BOUND_WORDS if (limit := _constraint(field, name)) is not None}
    if {"ge", "le"} <= limits.keys():
        return f"{limits['ge']} to {limits['le']}", f"from {limits['ge']} to {limits['le']}"
    words = " and ".join(f"{_BOUND_WORDS[name]} {limit}" for name, limit in limits.items())
    return words, words


def _allowed(annotation: Any, field: FieldInfo | None, value: Any) -> tuple[str, str]:
    """What a key accepts and how to fix ``value``, both read from its type and ``Field`` constraints."""
    if get_origin(annotation) is Literal:
        options = get_args(annotation)
        closest = _closest(value, options)
        hint = f"; the closest is {json.dumps(closest)}" if closest is not None else ""
        return ", ".join(json.dumps(option) for option in options), f"use one of the allowed values{hint}"
    if annotation in (int, float):
        noun = "whole number" if annotation is int else "number"
        allowed, phrase = _range(field)
        return allowed or f"any {noun}", f"set a {noun} {phrase}".rstrip()
    if annotation is bool:
        return "true or false", "set true or false"
    if annotation is str:
        if (pattern := _constraint(field, "pattern")) is None:
            return "text", "write it as text in double quotes"
        example = f", e.g. {json.dumps(field.examples[0])}" if field and field.examples else ""
        return f"text matching {pattern}", f"write it in that format{example}"
    noun = "a list" if get_origin(annotation) is list else "an object"
    size = f" of {least} or more entries" if (least := _constraint(field, "min_length")) else ""
    keys = _keys(annotation)
    return f"{noun}{size}" + (f" with the keys {keys}" if keys else ""), f"write {noun}{size}"


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def describe(error: Mapping[str, Any], root: type[BaseModel]) -> str:
    """One line for one problem of ``root``'s validation: where, the value, what is allowed and the fix."""
    loc = tuple(error["loc"])
    where = ".".join(str(part) for part in loc) or "(top level)"
    value, kind = error.get("input"), error["type"]
    if kind == "extra_forbidden":
        keys = _keys(_target(root, loc[:-1])[0])
        closest = _closest(str(loc[-1]), keys.split(", "))
        fix = f"rename it to {closest}, or remove it" if closest else "remove it or correct its spelling"
        set_to = "" if isinstance(value, Mapping | list) else f", set to {_shown(value)}"
        return f"{where}: unknown key{set_to} (allowed keys: {keys}). Fix: {fix}."
    if kind in ("value_error", "assertion_error"):  # our validators' messages carry their own fix
        message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ").rstrip(".")
        shown = "" if isinstance(value, Mapping) else f"{_shown(value)} is not allowed: "
        return f"{where}: {shown}{message}."
    allowed, fix = _allowed(*_target(root, loc), value)
    if kind == "missing":
        return f"{where}: missing (required: {allowed}). Fix: add it: {fix}."
    return f"{where}: {_shown(value)} is not allowed (allowed: {allowed}). Fix: {fix}."
