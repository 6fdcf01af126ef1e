"""The two assets every function uses, built on this machine: the dependency layer and the function code.

:class:`LocalPythonBundler` is CDK's local bundler for both (there is no Docker fallback);
:func:`dependencies_code` and :func:`application_code` are the ``lambda_.Code`` of each, and
:func:`build_locally` builds one outside CDK (benchmarks, import tests).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from fastapi_lambda.requirements import Capability

from cdk_app.bundling.install import CODE_EXCLUDES, compile_bytecode, copy_code, install_dependencies
from cdk_app.bundling.locks import LOCK_FILE, LOCK_INPUTS, find_lock
from cdk_app.bundling.powertools import app_imports
from cdk_app.bundling.target import RUNTIME_NAME, RUNTIME_PACKAGE, BundlingError, BundlingTarget, Kind

#: This repository's asset root (its example app); other apps pass ``source=``.
LAMBDA_SRC = Path(__file__).resolve().parents[2] / "lambda_src"


def _warn(message: str) -> None:
    print(f"[bundling] WARNING: {message}", file=sys.stderr)


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    """Builds an asset on this machine; there is no Docker fallback.

    ``kind="layer"`` installs the lock into ``python/`` (the layer layout), kept to
    what ``capabilities`` need (default: all); ``kind="code"`` copies the application source and the runtime package. Both
    compile ``.pyc`` when an interpreter of the target version exists. Returning
    False would make CDK fall back to Docker: failures raise a clear error instead.
    """

    def __init__(self, *, kind: Kind, source: Path, target: BundlingTarget,
                 capabilities: frozenset[Capability] | None = None) -> None:
        self.kind = kind
        self.source = Path(source)
        self.target = target
        self.capabilities = capabilities

    def try_bundle(self, output_dir: str, options: object = None, **_: object) -> bool:
        output = Path(output_dir)
        if self.kind == "layer":
            site = output / "python"
            install_dependencies(self.source, site, self.target, self.capabilities)
            runtime_path = "/opt/python"
        else:
            site = output
            copy_code(self.source, site)
            runtime_path = "/var/task"
        python = self.target.python(warn=_warn)
        if python is not None:
            compile_bytecode(site, python=python, runtime_path=runtime_path)
        return True


def bundling_options(kind: Kind, *, source: Path, target: BundlingTarget,
                     capabilities: frozenset[Capability] | None = None) -> BundlingOptions:
    """``BundlingOptions`` for a layer or code asset, built by :class:`LocalPythonBundler`."""
    return BundlingOptions(
        # CDK requires an image; it is never pulled, the local bundler always succeeds or raises.
        image=DockerImage.from_registry("local-bundling-only"),
        platform=f"linux/{'arm64' if target.architecture == 'arm64' else 'amd64'}",
        # The app's own Powertools imports decide what of Powertools the layer keeps (bundling.powertools).
        environment={**target.hash_inputs(kind, capabilities), **({"APP_POWERTOOLS": ",".join(sorted(
            app_imports(source, skip=RUNTIME_NAME)))} if kind == "layer" else {})},
        local=LocalPythonBundler(kind=kind, source=source, target=target, capabilities=capabilities),
    )


def default_source() -> Path:
    """``./lambda_src`` of the app being synthesized (the CDK CLI runs apps in their project folder)."""
    return Path.cwd() / "lambda_src"


def resolve_source(source: Path | str | None, *, lock: bool) -> Path:
    """The asset root to use, or a clear error naming ``source=``."""
    path = Path(source) if source is not None else default_source()
    what = f"source={path}" if source is not None else f"source= was not given and {path}"
    if not path.is_dir():
        raise BundlingError(f"{what} does not exist; pass source= the folder that holds your application "
                            f"package and its {LOCK_FILE} lock (this repository's lambda_src/ is the example)")
    if lock and find_lock(path) is None:
        raise BundlingError(f"{what} has no {LOCK_FILE} (nor uv.lock or poetry.lock); pass source= the folder that "
                            f"holds your application package and its {LOCK_FILE} lock (exact pins, name==version)")
    own = path / RUNTIME_NAME
    if own.is_dir() and own.resolve() != RUNTIME_PACKAGE:
        raise BundlingError(f"{what} has its own {RUNTIME_NAME}/ folder, which would shadow the runtime package "
                            "the constructs ship; rename it")
    return path


def dependencies_code(*, source: Path, target: BundlingTarget,
                      capabilities: frozenset[Capability] | None = None) -> lambda_.Code:
    """Layer code: only the lock (and a uv/Poetry project file) is part of the asset's files; what the
    ``capabilities`` (default: all) need of it."""
    return lambda_.Code.from_asset(
        str(source),
        exclude=["*", ".*", *(f"!{name}" for name in LOCK_INPUTS)],  # globs skip dotfiles unless named
        bundling=bundling_options("layer", source=source, target=target, capabilities=capabilities),
    )


def application_code(*, source: Path, target: BundlingTarget) -> lambda_.Code:
    """Function code: the application source without the lock or caches, plus the runtime package."""
    return lambda_.Code.from_asset(
        str(source),
        exclude=list(CODE_EXCLUDES),
        bundling=bundling_options("code", source=source, target=target),
    )


def build_locally(kind: Kind, output_dir: Path, *, source: Path = LAMBDA_SRC, target: BundlingTarget,
                  capabilities: frozenset[Capability] | None = None) -> Path:
    """Build an asset outside CDK (benchmarks, import tests); returns ``output_dir``. A layer holds what
    ``capabilities`` need (default: all)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    LocalPythonBundler(kind=kind, source=source, target=target, capabilities=capabilities).try_bundle(str(output_dir))
    return output_dir
