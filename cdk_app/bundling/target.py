"""What a bundle is built for (:class:`BundlingTarget`) and from: the runtime package, and this bundler's revision.

The asset hash is CDK's source hash: the asset's files plus the ``BundlingOptions``.
:meth:`BundlingTarget.hash_inputs` puts the target architecture, Python version, SDK choice,
this package's own revision and the runtime package's into ``BundlingOptions.environment``, so
that a change to any of them changes the hash; nothing else about the build machine does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import fastapi_lambda
from aws_cdk import aws_lambda as lambda_
from fastapi_lambda.requirements import CAPABILITIES, CAPABILITY_REQUIREMENTS, POWERTOOLS_MODULES, Capability

from cdk_app.bundling.interpreters import find_python, missing_interpreter_message
from cdk_app.settings import DEFAULTS
from cdk_app.settings.choices import Architecture

#: The layer (the locked dependencies) or the function code (the user's source and the runtime package).
Kind = Literal["layer", "code"]


def _digest(*files: Path) -> str:
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]


#: Changes whenever a file of this package changes, so bundler fixes reach already-built assets.
BUNDLER_REVISION = _digest(*sorted(Path(__file__).resolve().parent.glob("*.py")))
#: The runtime package shipped in every code asset, and its revision (part of the code's hash).
RUNTIME_PACKAGE = Path(fastapi_lambda.__file__).resolve().parent
RUNTIME_REVISION = _digest(*sorted(RUNTIME_PACKAGE.glob("*.py")))
#: What ``from fastapi_lambda import ...`` looks up in a user's source: a folder of that name would shadow it.
RUNTIME_NAME = RUNTIME_PACKAGE.name


class BundlingError(RuntimeError):
    """Raised when an asset cannot be built; the message says what to do."""


@dataclass(frozen=True)
class BundlingTarget:
    """What the bundle is built for."""

    python_version: str = DEFAULTS.function.python_version
    architecture: Architecture = DEFAULTS.function.architecture
    include_aws_sdk: bool = DEFAULTS.bundling.include_aws_sdk
    require_compiled: bool = DEFAULTS.bundling.require_compiled

    @property
    def runtime(self) -> lambda_.Runtime:
        # CDK's constants carry capabilities (SnapStart support); build one only for newer versions.
        known = getattr(lambda_.Runtime, f"PYTHON_{self.python_version.replace('.', '_')}", None)
        return known or lambda_.Runtime(f"python{self.python_version}", lambda_.RuntimeFamily.PYTHON,
                                        supports_snap_start=True)

    @property
    def lambda_architecture(self) -> lambda_.Architecture:
        return lambda_.Architecture.ARM_64 if self.architecture == "arm64" else lambda_.Architecture.X86_64

    @property
    def machine(self) -> str:
        return "aarch64" if self.architecture == "arm64" else "x86_64"

    def python(self, warn: Callable[[str], None]) -> tuple[str, ...] | None:
        """The interpreter that compiles this target's ``.pyc``; without one, None after ``warn`` (the bundle
        then imports slower), or an error when compiled output is required (``require_compiled``)."""
        python = find_python(self.python_version)
        if python is None:
            message = missing_interpreter_message(self.python_version)
            if self.require_compiled:
                raise BundlingError(f"{message} bundling.require_compiled is on, so this is an error; set it to "
                                    "false to accept a slower bundle.")
            warn(message)
        return python

    def hash_inputs(self, kind: Kind, capabilities: frozenset[Capability] | None = None) -> dict[str, str]:
        """Everything besides the asset's files that must change its hash: for a layer, the capabilities
        it serves (default: all) and the runtime package's requirement table."""
        extra = {"RUNTIME_REVISION": RUNTIME_REVISION} if kind == "code" else {
            "CAPABILITIES": ",".join(sorted(CAPABILITIES if capabilities is None else capabilities)),
            "RUNTIME_REQUIREMENTS": ";".join(f"{c}:{line}" for c, lines in CAPABILITY_REQUIREMENTS.items()
                                             for line in lines),
            "RUNTIME_POWERTOOLS": ";".join(f"{c}:{module}" for c, modules in POWERTOOLS_MODULES.items()
                                           for module in modules),
        }
        return {
            "TARGET_PYTHON": self.python_version,
            "TARGET_ARCHITECTURE": self.architecture,
            "INCLUDE_AWS_SDK": str(self.include_aws_sdk).lower(),
            "BUNDLER_REVISION": BUNDLER_REVISION,
            **extra,
        }

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values of the Lambda runtime, to evaluate requirements for it."""
        return {
            "python_version": self.python_version, "python_full_version": f"{self.python_version}.0",
            "implementation_name": "cpython", "implementation_version": f"{self.python_version}.0",
            "platform_python_implementation": "CPython", "platform_machine": self.machine,
            "platform_system": "Linux", "sys_platform": "linux", "os_name": "posix",
            "platform_release": "", "platform_version": "",
        }
