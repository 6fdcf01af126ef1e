"""The API reference (``make docs``, generated from the docstrings) cannot lie or leave things out.

Every ``Example::`` block in the docstrings of the modules below runs as a consumer would paste it: in a
fresh stack (``stack``) of an app that skips bundling, from the repository's root (so ``source="lambda_src"``
is this repository's example app), and the stack then synthesizes (construct validations included).
Every public construct documents each constructor prop (``:param name:``, with ``@default`` when it has
one), has an example, and every public method says what it grants, measures or adds.

To cover another module, add it to :data:`MODULES`.
"""

from __future__ import annotations

import importlib
import inspect
import re
import textwrap
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Template
from constructs import Construct

from cdk_app.testing import app_for_tests
from tests.docs.markdown import REPO

#: The modules whose public constructs are documented and whose examples run.
MODULES = [
    "cdk_app.api",
    "cdk_app.auth",
    "cdk_app.cache",
    "cdk_app.cold_start",
    "cdk_app.delivery",
    "cdk_app.function",
    "cdk_app.image",
    "cdk_app.network",
    "cdk_app.observability",
    "cdk_app.parameters",
    "cdk_app.releases",
    "cdk_app.stack",
    "cdk_app.tasks",
]

#: The line that opens an example: ``Example::``, or ``Example (what it shows)::``.
_EXAMPLE = re.compile(r"^(?P<indent>[ ]*)Example\b.*::[ ]*$")


def _public(module: ModuleType) -> Iterator[tuple[str, Any]]:
    """The public classes and functions ``module`` defines itself (not those it imports)."""
    for name, value in vars(module).items():
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value)) \
                and value.__module__ == module.__name__:
            yield name, value


def _constructs(module: ModuleType) -> list[tuple[str, type[Construct]]]:
    return [(name, value) for name, value in _public(module) if inspect.isclass(value) and issubclass(value, Construct)]


def example_blocks(doc: str) -> list[str]:
    """The code of each ``Example::`` literal block in ``doc`` (a cleaned docstring), dedented."""
    lines, blocks = doc.splitlines(), []
    for number, line in enumerate(lines):
        match = _EXAMPLE.match(line)
        if not match:
            continue
        indent, body = len(match["indent"]), []
        for following in lines[number + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n"))
    return blocks


def _examples() -> Iterator[Any]:
    for module_name in MODULES:
        for name, value in _public(importlib.import_module(module_name)):
            for number, code in enumerate(example_blocks(inspect.getdoc(value) or ""), start=1):
                yield pytest.param(module_name, code, id=f"{module_name}.{name}#{number}")


def _params(cls: type) -> list[inspect.Parameter]:
    """The props of a construct's constructor: everything after ``scope`` and ``id``."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[3:]
    return [p for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL]


def _documented(doc: str) -> dict[str, str]:
    """``:param name: text`` entries of a docstring, each with its continuation lines."""
    entries: dict[str, str] = {}
    for match in re.finditer(r"^:param (\w+):(.*(?:\n[ ]+.*)*)", doc, flags=re.MULTILINE):
        entries[match[1]] = " ".join(match[2].split())
    return entries


@pytest.mark.parametrize(("module_name", "code"), list(_examples()))
def test_example_runs_and_synthesizes(module_name, code, monkeypatch):
    monkeypatch.chdir(REPO)
    stack = Stack(app_for_tests(), "Example")
    namespace: dict[str, Any] = {**dict(_public(importlib.import_module(module_name))), "stack": stack}

    exec(compile(code, f"<example in {module_name}>", "exec"), namespace)  # noqa: S102 - our own docstrings

    Template.from_stack(stack)  # synthesizes: a construct's validation error fails here


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_construct_documents_its_props_and_has_an_example(module_name):
    problems = []
    for name, cls in _constructs(importlib.import_module(module_name)):
        doc = inspect.getdoc(cls) or ""
        documented = _documented(doc)
        if not example_blocks(doc):
            problems.append(f"{name}: no Example:: block")
        for parameter in _params(cls):
            text = documented.get(parameter.name)
            if text is None:
                problems.append(f"{name}: prop {parameter.name} has no ':param {parameter.name}:'")
            elif parameter.default is not inspect.Parameter.empty and parameter.kind is not parameter.VAR_KEYWORD \
                    and "@default" not in text:
                problems.append(f"{name}: prop {parameter.name} has a default but its :param says no @default")
        for line in re.findall(r"^:param \w+:(.*)$", doc, flags=re.MULTILINE):
            # pdoc reads up to the line's last colon as the name (cross-references like :class:`X` it renders first)
            if ":" in re.sub(r":\w+:`[^`]+`", "", line):
                problems.append(f"{name}: a colon in the first line of ':param ...:{line}' garbles it in pdoc")
        for extra in sorted(set(documented) - {p.name for p in _params(cls)}):
            problems.append(f"{name}: ':param {extra}:' documents no prop of the constructor")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_method_says_what_it_does(module_name):
    undocumented = [
        f"{name}.{method}" for name, cls in _constructs(importlib.import_module(module_name))
        for method, member in vars(cls).items()
        if not method.startswith("_") and (inspect.isfunction(member) or isinstance(member, property))
        and not inspect.getdoc(member)
    ]
    assert not undocumented, f"public methods without a docstring: {', '.join(undocumented)}"


def test_example_blocks_finds_each_literal_block_and_nothing_else():
    doc = "A thing.\n\n:param x: y. @default 1\n\nExample::\n\n    a = 1\n\n    b = a\nAfter.\n\nExample::\n\n  c = 2\n"

    assert example_blocks(doc) == ["a = 1\n\nb = a", "c = 2"]
    assert example_blocks("No example:: here.\n\n    x = 1") == []


def test_no_cross_reference_uses_a_tilde():
    # pdoc renders Sphinx's ``:class:`~a.b.C``` with the tilde as text: write the plain reference.
    tilde = re.compile(r":(?:class|mod|func|meth|attr|data|exc):`~")
    found = [f"{path.relative_to(REPO)}:{number}" for root in ("cdk_app", "lambda_src/fastapi_lambda")
             for path in sorted((REPO / root).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if tilde.search(line)]
    assert not found, f"'~' in a cross-reference (pdoc prints it): {found}"
