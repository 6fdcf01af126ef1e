"""Typed, validated per-environment settings, read from the ``cdk.json`` context; no CDK import.

- :mod:`cdk_app.settings.schema`: one model per capability, with every default and bound
  (:data:`DEFAULTS` holds them all, and the constructs take their defaults from it);
- :mod:`cdk_app.settings.choices`: every closed set of words a setting or a prop accepts;
- :mod:`cdk_app.settings.rules`: every rule across settings, called with the constructs' prop
  names or with ``cdk.json``'s keys; :mod:`cdk_app.settings.routes`: the ``"METHOD /path"`` rule;
- :mod:`cdk_app.settings.limits`: the names, lengths and formats AWS accepts (the preflight's too);
- :mod:`cdk_app.settings.errors` and :mod:`cdk_app.settings.loader`: one line per problem, and
  the loader :func:`load_settings`.
"""

from cdk_app.settings.errors import ConfigError
from cdk_app.settings.loader import CDK_JSON, load_settings, read_cdk_json_context, warn_on_stderr
from cdk_app.settings.schema import DEFAULTS, EnvironmentSettings, ProjectSettings

__all__ = ["CDK_JSON", "DEFAULTS", "ConfigError", "EnvironmentSettings", "ProjectSettings", "load_settings",
           "read_cdk_json_context", "warn_on_stderr"]
