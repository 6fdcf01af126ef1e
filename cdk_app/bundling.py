"""Docker-free bundling of the Lambda code and of its dependency layer.

The layer is built with ``pip install --platform ... --only-binary=:all: --target``
from the pinned lock, for the target architecture and Python version, and ships
``.pyc`` files compiled by an interpreter of exactly that version
(``--invalidation-mode unchecked-hash``): ``/var/task`` and ``/opt`` are read-only
on Lambda, so without them every cold start compiles every module again.

The asset hash is CDK's source hash: the asset's files plus the ``BundlingOptions``.
The target architecture, Python version, SDK choice and this module's own revision
are written into ``BundlingOptions.environment`` so that a change to any of them
changes the hash; nothing else about the build machine does.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

Architecture = Literal["arm64", "x86_64"]

#: Changes whenever this file changes, so bundler fixes reach already-built assets.
BUNDLER_REVISION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

#: Default asset root: the repository's ``lambda_src`` folder.
LAMBDA_SRC = Path(__file__).resolve().parent.parent / "lambda_src"
LOCK_FILE = "requirements.txt"

#: The Lambda Python runtimes already ship these; bundling them only adds weight.
AWS_SDK_PACKAGES = frozenset({"boto3", "botocore", "s3transfer"})

#: Never part of the function code asset (also excluded from its hash).
CODE_EXCLUDES = (LOCK_FILE, "__pycache__", "*.pyc", "tests", ".*", "*.egg-info")

#: Removed from installed dependencies: console scripts carry absolute shebangs,
#: RECORD files list hashes of files we delete, tests are dead weight.
_STRIP_DIRS = frozenset({"bin", "tests", "__pycache__"})
_STRIP_FILES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})

_PLATFORM_TAGS = ("manylinux_2_34", "manylinux_2_28", "manylinux2014")


class BundlingError(RuntimeError):
    """Raised when an asset cannot be built; the message says what to do."""


@dataclass(frozen=True)
class BundlingTarget:
    """What the bundle is built for."""

    python_version: str = "3.13"
    architecture: Architecture = "arm64"
    include_aws_sdk: bool = False
    require_compiled: bool = False

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

    def hash_inputs(self) -> dict[str, str]:
        """Everything besides the files that must change the asset hash."""
        return {
            "TARGET_PYTHON": self.python_version,
            "TARGET_ARCHITECTURE": self.architecture,
            "INCLUDE_AWS_SDK": str(self.include_aws_sdk).lower(),
            "BUNDLER_REVISION": BUNDLER_REVISION,
        }


def _version_of(command: tuple[str, ...]) -> str | None:
    try:
        done = subprocess.run([*command, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _candidate_interpreters(version: str) -> Iterator[tuple[str, ...]]:
    """Commands that may run Python ``version``, cheapest first; produced only as needed."""
    if override := os.environ.get(f"PYTHON_{version.replace('.', '_')}"):
        yield (override,)
    for name in (f"python{version}", "python3", "python"):
        if path := shutil.which(name):
            yield (path,)
    if launcher := shutil.which("py"):  # the Windows launcher
        yield (launcher, f"-{version}")
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    yield from ((str(p),) for p in sorted(Path(pyenv_root).glob(f"versions/{version}*/bin/python{version}")))
    if uv := shutil.which("uv"):
        try:
            done = subprocess.run([uv, "python", "find", version], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return
        if done.returncode == 0 and done.stdout.strip():
            yield (done.stdout.strip(),)


@functools.cache
def find_python(version: str) -> tuple[str, ...] | None:
    """Find an interpreter of exactly ``version`` (``"3.13"``) on this machine.

    ``PYTHON_3_13`` (for 3.13) wins when set; otherwise looks on PATH, at the Windows
    ``py`` launcher, in pyenv and in uv-managed installations, and runs each candidate
    to check its version (a pyenv shim for an unselected version fails that check).
    Returns the command to run it, or None when there is none.
    """
    return next((c for c in _candidate_interpreters(version) if _version_of(c) == version), None)


def missing_interpreter_message(version: str) -> str:
    return (
        f"No Python {version} interpreter was found on this machine, so the Lambda bundle ships without "
        f".pyc files: every cold start then compiles every module again (this app imports in ~0.7 s instead of "
        f"~0.3 s, measured on CPython 3.13). Install Python {version} (for example `pyenv install {version}` "
        f"or `uv python install {version}`), or point PYTHON_{version.replace('.', '_')} at one."
    )


def locked_requirements(lock_file: Path, *, include_aws_sdk: bool) -> list[str]:
    """The requirement lines of the lock, without the AWS SDK unless asked for."""
    lines = []
    for raw in lock_file.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.split("==", 1)[0].split("[", 1)[0].strip().lower().replace("_", "-")
        if name in AWS_SDK_PACKAGES and not include_aws_sdk:
            continue
        if "==" not in line and not line.startswith("-"):
            raise BundlingError(f"{lock_file}: '{line}' is not pinned; the lock must pin exact versions (name==version).")
        lines.append(line)
    return lines


def pip_install_command(requirements_file: Path, target_dir: Path, target: BundlingTarget) -> list[str]:
    """The pip command that installs the lock for the Lambda platform, never building from source."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-deps", "--no-compile", "--only-binary=:all:", "--implementation", "cp",
               "--python-version", target.python_version, "--target", str(target_dir),
               "--requirement", str(requirements_file)]
    for tag in _PLATFORM_TAGS:
        command += ["--platform", f"{tag}_{target.machine}"]
    return command


def strip_installed(directory: Path) -> None:
    """Remove console scripts, tests, caches and RECORD-like files for a reproducible tree."""
    for path in sorted(directory.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in _STRIP_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.parent.name.endswith(".dist-info") and path.name in _STRIP_FILES:
            path.unlink()


def compile_bytecode(directory: Path, *, python: tuple[str, ...], runtime_path: str) -> None:
    """Compile every module with the target interpreter, as Lambda will import it."""
    command = [*python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
               "-s", str(directory), "-p", runtime_path, str(directory)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        # A module that does not compile cannot be imported either; report, don't fail.
        print(f"[bundling] warning: some modules did not compile:\n{done.stdout[-2000:]}", file=sys.stderr)


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    """Builds an asset on this machine instead of in Docker.

    ``kind="layer"`` installs the lock into ``python/`` (the layer layout);
    ``kind="code"`` copies the application source. Both compile ``.pyc`` when an
    interpreter of the target version exists. Returning False would make CDK fall
    back to Docker, which is not available: failures raise a clear error instead.
    """

    def __init__(self, *, kind: Literal["layer", "code"], source: Path, target: BundlingTarget) -> None:
        self.kind = kind
        self.source = Path(source)
        self.target = target

    def try_bundle(self, output_dir: str, options: object = None, **_: object) -> bool:
        output = Path(output_dir)
        if self.kind == "layer":
            site = output / "python"
            self._install_dependencies(site)
            runtime_path = "/opt/python"
        else:
            site = output
            _copy_source(self.source, site)
            runtime_path = "/var/task"
        python = find_python(self.target.python_version)
        if python is None:
            message = missing_interpreter_message(self.target.python_version)
            if self.target.require_compiled:
                raise BundlingError(message + " (bundling.require_compiled is on, so this is an error.)")
            print(f"[bundling] WARNING: {message}", file=sys.stderr)
        else:
            compile_bytecode(site, python=python, runtime_path=runtime_path)
        return True

    def _install_dependencies(self, site: Path) -> None:
        lock = self.source / LOCK_FILE
        if not lock.is_file():
            raise BundlingError(f"The dependency lock {lock} does not exist; create it with exact pins (name==version).")
        site.mkdir(parents=True, exist_ok=True)
        filtered = site.parent / "requirements.lock.txt"
        filtered.write_text("\n".join(locked_requirements(lock, include_aws_sdk=self.target.include_aws_sdk)) + "\n")
        command = pip_install_command(filtered, site, self.target)
        done = subprocess.run(command, capture_output=True, text=True)
        filtered.unlink()
        if done.returncode != 0:
            raise BundlingError(
                f"pip could not install {lock} for Python {self.target.python_version} on "
                f"{self.target.architecture} (manylinux wheels only, no source builds):\n"
                f"{_pip_errors(done.stderr or done.stdout)}\n"
                "Check the pins in the lock and that every package publishes a wheel for this platform."
            )
        strip_installed(site)


def _pip_errors(output: str) -> str:
    """pip's ERROR lines, or its last lines; each cut short (version lists run to kilobytes)."""
    lines = [line for line in output.strip().splitlines() if line.startswith("ERROR")]
    return "\n".join(line if len(line) < 300 else line[:300] + " …" for line in lines or output.strip().splitlines()[-10:])


def _copy_source(source: Path, destination: Path) -> None:
    def ignored(directory: str, names: list[str]) -> set[str]:
        return {n for n in names for pattern in CODE_EXCLUDES if fnmatch.fnmatch(n, pattern)}

    shutil.copytree(source, destination, ignore=ignored, dirs_exist_ok=True)


def _docker_command(kind: Literal["layer", "code"], target: BundlingTarget) -> list[str]:
    compile_ = "python -m compileall -q --invalidation-mode unchecked-hash"
    if kind == "layer":
        script = (f"pip install --no-deps --no-compile -r {LOCK_FILE} -t /asset-output/python && "
                  f"rm -rf /asset-output/python/bin && {compile_} -s /asset-output/python -p /opt/python /asset-output/python")
    else:
        script = f"cp -r . /asset-output && {compile_} -s /asset-output -p /var/task /asset-output"
    return ["bash", "-c", script]


def bundling_options(
    kind: Literal["layer", "code"], *, source: Path, target: BundlingTarget, use_docker: bool = False
) -> BundlingOptions:
    """``BundlingOptions`` for a layer or code asset; local unless ``use_docker``."""
    return BundlingOptions(
        image=target.runtime.bundling_image if use_docker else DockerImage.from_registry("local-bundling-only"),
        command=_docker_command(kind, target) if use_docker else None,
        platform=f"linux/{'arm64' if target.architecture == 'arm64' else 'amd64'}",
        environment=target.hash_inputs(),
        local=None if use_docker else LocalPythonBundler(kind=kind, source=source, target=target),
    )


def _require_source(source: Path, *, lock: bool) -> None:
    if not source.is_dir() or (lock and not (source / LOCK_FILE).is_file()):
        raise BundlingError(
            f"source={source} has no {LOCK_FILE if lock else 'application code'}; pass source= the folder that "
            f"holds your application package and its {LOCK_FILE} lock (this repository's lambda_src/ is the example)"
        )


def dependencies_code(*, source: Path = LAMBDA_SRC, target: BundlingTarget, use_docker: bool = False) -> lambda_.Code:
    """Layer code: only the lock is part of the asset's files."""
    _require_source(source, lock=True)
    return lambda_.Code.from_asset(
        str(source),
        exclude=["*", ".*", f"!{LOCK_FILE}"],  # globs skip dotfiles unless named
        bundling=bundling_options("layer", source=source, target=target, use_docker=use_docker),
    )


def application_code(*, source: Path = LAMBDA_SRC, target: BundlingTarget, use_docker: bool = False) -> lambda_.Code:
    """Function code: the application source without the lock or caches."""
    _require_source(source, lock=False)
    return lambda_.Code.from_asset(
        str(source),
        exclude=list(CODE_EXCLUDES),
        bundling=bundling_options("code", source=source, target=target, use_docker=use_docker),
    )


def build_locally(kind: Literal["layer", "code"], output_dir: Path, *, source: Path = LAMBDA_SRC,
                  target: BundlingTarget) -> Path:
    """Build an asset outside CDK (benchmarks, import tests); returns ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    LocalPythonBundler(kind=kind, source=source, target=target).try_bundle(str(output_dir))
    return output_dir
