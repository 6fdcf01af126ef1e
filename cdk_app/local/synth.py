"""The CDK app ``make local`` synthesizes: this repository's stacks, built for this machine's architecture.

``npx cdk synth --app "python -m cdk_app.local.synth" -c env=dev -o .local/cdk.out`` gives the
same templates as ``make synth`` except ``function.architecture``, which follows the machine
(x86_64 or arm64): a bundle built for another architecture cannot run here.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

from aws_cdk import App

from cdk_app.settings import ConfigError, read_cdk_json_context
from cdk_app.shapes import is_object
from cdk_app.stack import build_stacks


def host_architecture() -> str:
    """The Lambda architecture this machine runs natively."""
    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


def for_this_machine(environments: dict[str, Any]) -> dict[str, Any]:
    """Every environment's settings with ``function.architecture`` set to this machine's."""
    return {name: {**settings, "function": {**settings.get("function", {}), "architecture": host_architecture()}}
            if is_object(settings) else settings for name, settings in environments.items()}


def main() -> None:
    app = App()
    environments: dict[str, Any] = (app.node.try_get_context("environments")
                                    or read_cdk_json_context().get("environments") or {})
    app.node.set_context("environments", for_this_machine(environments))
    try:
        build_stacks(app)
    except ConfigError as error:
        sys.exit(str(error))
    app.synth()


if __name__ == "__main__":
    main()
