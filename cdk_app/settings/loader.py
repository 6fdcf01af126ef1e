"""The ``cdk.json`` context, read and validated into :class:`cdk_app.settings.schema.ProjectSettings`.

Only :func:`cdk_app.stack.build_stacks` reads the CDK context; it hands what it read to
:func:`load_settings`, which raises :class:`cdk_app.settings.errors.ConfigError` with one
line per problem.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cdk_app.settings.errors import ConfigError, describe
from cdk_app.settings.schema import ProjectSettings
from cdk_app.shapes import is_mapping

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def _validate(raw: Mapping[str, Any]) -> ProjectSettings:
    try:
        settings = ProjectSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(*(describe(error, ProjectSettings) for error in exc.errors())) from None
    if problems := settings.names_problems():
        raise ConfigError(*problems)
    return settings


def warn_on_stderr(problem: str) -> None:
    print(f"warning: {problem}", file=sys.stderr)


def load_settings(context: Mapping[str, Any], only: str | None = None,
                  warn: Callable[[str], None] = warn_on_stderr) -> ProjectSettings:
    """Validate the CDK context; raise :class:`ConfigError` with one line per problem.

    ``only`` (``-c env=<name>``) keeps just that environment. Each other environment's
    problems then go to ``warn`` instead: a typo in prod must not block a dev synth.
    Top-level keys (``app_name``) are always errors.
    """
    raw = {key: context[key] for key in ("app_name", "environments") if key in context}
    environments = raw.get("environments")
    if only is not None and is_mapping(environments):
        if only not in environments:
            known = ", ".join(sorted(environments))
            raise ConfigError(f"-c env={only}: no such environment. Fix: use one of {known}, or omit -c env "
                              "to synth all.")
        if others := {name: env for name, env in environments.items() if name != only}:
            try:
                _validate({"environments": others})
            except ConfigError as problems:
                for problem in problems.problems:
                    warn(problem)
        raw["environments"] = {only: environments[only]}
    return _validate(raw)


def read_cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """The ``context`` block of ``cdk.json`` (``python app.py`` and tests do not get it from the CLI)."""
    return dict(json.loads(path.read_text()).get("context", {}))
