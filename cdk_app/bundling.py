"""Docker-free bundling of the Lambda code and of its dependency layer.

The layer is built with ``pip install --platform ... --only-binary=:all: --target``
from the pinned lock (plus what the runtime package needs), resolved for the target
architecture and Python version, then checked: every installed distribution's
requirements must be installed too, or synth stops naming what is missing. Both
assets ship ``.pyc`` files compiled by an interpreter of exactly the target version
(``--invalidation-mode unchecked-hash``): ``/var/task`` and ``/opt`` are read-only
on Lambda, so without them every cold start compiles every module again. The code
asset carries the runtime package :mod:`fastapi_lambda` next to the user's code.

The asset hash is CDK's source hash: the asset's files plus the ``BundlingOptions``.
The target architecture, Python version, SDK choice, this module's own revision and
the runtime package's are written into ``BundlingOptions.environment`` so that a
change to any of them changes the hash; nothing else about the build machine does.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import fastapi_lambda
import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from fastapi_lambda.constants import RUNTIME_REQUIREMENTS
from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

Architecture = Literal["arm64", "x86_64"]
Kind = Literal["layer", "code"]


def _digest(*files: Path) -> str:
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]


#: Changes whenever this file changes, so bundler fixes reach already-built assets.
BUNDLER_REVISION = _digest(Path(__file__))
#: The runtime package shipped in every code asset, and its revision (part of the code's hash).
RUNTIME_PACKAGE = Path(fastapi_lambda.__file__).resolve().parent
RUNTIME_REVISION = _digest(*sorted(RUNTIME_PACKAGE.glob("*.py")))

#: This repository's asset root (its example app); other apps pass ``source=``.
LAMBDA_SRC = Path(__file__).resolve().parent.parent / "lambda_src"
LOCK_FILE = "requirements.txt"
#: Other locks, exported to requirements.txt form by their own tool (which must be installed).
TOOL_LOCKS = {
    "uv.lock": ("uv", ["export", "--frozen", "--no-dev", "--no-emit-project", "--format", "requirements-txt",
                       "--output-file"]),
    "poetry.lock": ("poetry", ["export", "--format", "requirements.txt", "--output"]),
}
#: The files of a source folder that make up the layer asset (and its hash).
LOCK_INPUTS = (LOCK_FILE, *TOOL_LOCKS, "pyproject.toml")
#: Seconds before a pip or compileall run is given up (a hung index, a huge tree).
PIP_TIMEOUT_S = 900
COMPILE_TIMEOUT_S = 300

#: The Lambda Python runtimes already ship these; bundling them only adds weight.
AWS_SDK_PACKAGES = frozenset({"boto3", "botocore", "s3transfer"})
#: What ``from fastapi_lambda import ...`` looks up in a user's source: a folder of that name would shadow it.
RUNTIME_NAME = RUNTIME_PACKAGE.name

#: Never part of the function code asset (also excluded from its hash).
CODE_EXCLUDES = (*LOCK_INPUTS, "__pycache__", "*.pyc", "tests", ".*", "*.egg-info")

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

    def hash_inputs(self, kind: Kind) -> dict[str, str]:
        """Everything besides the asset's files that must change its hash."""
        extra = {"RUNTIME_REVISION": RUNTIME_REVISION} if kind == "code" else \
            {"RUNTIME_REQUIREMENTS": ";".join(RUNTIME_REQUIREMENTS)}
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


def _logical_lines(text: str) -> list[str]:
    """The lock's requirement lines, continuations joined and comments dropped."""
    joined = text.replace("\\\n", " ")
    return [" ".join(line.split(" #", 1)[0].split()) for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def locked_requirements(lock_file: Path, *, include_aws_sdk: bool) -> list[str]:
    """The requirement lines of the lock (hashes kept), without the AWS SDK unless asked for."""
    lines = []
    for line in _logical_lines(lock_file.read_text()):
        if line.startswith("-"):  # pip options (--index-url, --hash on its own line ...)
            lines.append(line)
            continue
        try:
            requirement = Requirement(line.split(" --", 1)[0])
        except InvalidRequirement as exc:
            raise BundlingError(f"{lock_file}: '{line}' is not a valid requirement ({exc}).") from None
        if not include_aws_sdk and _is_aws_sdk(line):
            continue
        pins = [spec for spec in requirement.specifier if spec.operator in ("==", "===")]
        if not pins and not requirement.url:
            raise BundlingError(f"{lock_file}: '{line}' is not pinned; the lock must pin exact versions (name==version).")
        lines.append(line)
    return lines


def _is_aws_sdk(line: str) -> bool:
    return not line.startswith("-") and canonicalize_name(Requirement(line.split(" --", 1)[0]).name) in AWS_SDK_PACKAGES


def _uses_hashes(lines: list[str]) -> bool:
    return any("--hash" in line for line in lines)


def pip_install_command(requirements_file: Path, target_dir: Path, target: BundlingTarget) -> list[str]:
    """The pip command that resolves and installs the lock for the Lambda platform, never from source.

    Dependencies are resolved (an incomplete lock still gives a complete bundle); exact
    pins win, and a lock with ``--hash`` puts pip in hash-checking mode.
    """
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-compile", "--only-binary=:all:", "--implementation", "cp",
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


def _distributions(site: Path) -> dict[str, importlib.metadata.Distribution]:
    """The distributions installed in ``site``, by canonical name."""
    found = (d for d in importlib.metadata.distributions(path=[str(site)]) if d.metadata["Name"])
    return {canonicalize_name(d.metadata["Name"]): d for d in found}


def remove_distributions(site: Path, names: frozenset[str]) -> None:
    """Uninstall distributions that a dependency pulled in but the runtime provides (the AWS SDK)."""
    for name, dist in _distributions(site).items():
        if name not in names:
            continue
        files = list(dist.files or ())  # read once: RECORD itself is among them
        for top in {Path(str(f)).parts[0] for f in files} - {"..", "bin"}:
            target = site / top
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)


def unmet_requirements(site: Path, target: BundlingTarget, wanted: list[str], runtime: Sequence[str]) -> list[str]:
    """What the installed tree needs but lacks, evaluated for ``target``; empty when complete.

    ``wanted`` are the top-level requirement lines (the lock), ``runtime`` what the runtime
    package needs. Runtime-provided packages
    (the AWS SDK, unless it is bundled) count as present. Checked on the files: the
    ``*.dist-info`` metadata in ``site``.
    """
    installed = _distributions(site)
    provided = set() if target.include_aws_sdk else AWS_SDK_PACKAGES
    environment = target.marker_environment()
    problems: list[str] = []
    pending = [(Requirement(line.split(" --", 1)[0]), "the lock") for line in wanted if not line.startswith("-")]
    pending += [(Requirement(line), "the runtime package fastapi_lambda") for line in runtime]
    seen: set[tuple[str, str]] = set()
    while pending:
        requirement, needed_by = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in provided:
            continue
        dist = installed.get(name)
        if dist is None:
            problems.append(f"{requirement} (needed by {needed_by}) is not installed")
            continue
        if not requirement.specifier.contains(dist.version, prereleases=True):
            problems.append(f"{requirement} (needed by {needed_by}) is installed as {dist.version}")
        for extra in ("", *sorted(requirement.extras)):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for line in dist.requires or ():
                dependency = Requirement(line)
                try:
                    applies = dependency.marker is None or dependency.marker.evaluate({**environment, "extra": extra})
                except UndefinedEnvironmentName:
                    applies = True
                if applies:
                    pending.append((dependency, f"{dist.metadata['Name']} {dist.version}"))
    return sorted(set(problems))


def compile_bytecode(directory: Path, *, python: tuple[str, ...], runtime_path: str) -> None:
    """Compile every module with the target interpreter, as Lambda will import it."""
    command = [*python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
               "-s", str(directory), "-p", runtime_path, str(directory)]
    done = _run(command, COMPILE_TIMEOUT_S, "compileall")
    if done.returncode != 0:
        # A module that does not compile cannot be imported either; report, don't fail.
        print(f"[bundling] warning: some modules did not compile:\n{done.stdout[-2000:]}", file=sys.stderr)


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    """Builds an asset on this machine; there is no Docker fallback.

    ``kind="layer"`` installs the lock into ``python/`` (the layer layout);
    ``kind="code"`` copies the application source and the runtime package. Both
    compile ``.pyc`` when an interpreter of the target version exists. Returning
    False would make CDK fall back to Docker: failures raise a clear error instead.
    """

    def __init__(self, *, kind: Kind, source: Path, target: BundlingTarget) -> None:
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
            copy_code(self.source, site)
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
        site.mkdir(parents=True, exist_ok=True)
        lock = find_lock(self.source)
        if lock is None:
            raise BundlingError(f"{self.source} has no dependency lock ({', '.join(LOCK_INPUTS[:-1])}); "
                                "create requirements.txt with exact pins (name==version).")
        pins = lock
        if lock.name in TOOL_LOCKS:
            pins = site.parent / "exported-requirements.txt"
            export_lock(lock, pins)
        # Hash-checking mode resolves nothing: a hashed lock goes in whole (an SDK a dependency needs
        # included, taken out after the install) and unhashed runtime needs cannot be added.
        wanted = locked_requirements(pins, include_aws_sdk=True)
        hashed = _uses_hashes(wanted)
        if pins is not lock:
            pins.unlink()
        if not hashed and not self.target.include_aws_sdk:
            wanted = [line for line in wanted if not _is_aws_sdk(line)]
        requested = wanted if hashed else [*wanted, *RUNTIME_REQUIREMENTS]
        filtered = site.parent / "requirements.lock.txt"
        filtered.write_text("\n".join(requested) + "\n")
        try:
            done = _run(pip_install_command(filtered, site, self.target), PIP_TIMEOUT_S, "pip")
        finally:
            filtered.unlink()
        where = f"{lock} for Python {self.target.python_version} on {self.target.architecture}"
        if done.returncode != 0:
            raise BundlingError(
                f"pip could not install {where} (manylinux wheels only, no source builds):\n"
                f"{_pip_errors(done.stderr or done.stdout)}\n"
                "Check the pins in the lock and that every package publishes a wheel for this platform."
            )
        if not self.target.include_aws_sdk:
            remove_distributions(site, AWS_SDK_PACKAGES)
        missing = unmet_requirements(site, self.target, wanted, RUNTIME_REQUIREMENTS)
        if missing:
            raise BundlingError(f"The bundle of {where} is incomplete:\n  " + "\n  ".join(missing)
                                + "\nAdd the missing packages to the lock with exact pins (and hashes if it has them).")
        strip_installed(site)


def find_lock(source: Path) -> Path | None:
    """The source's lock: requirements.txt, else a uv or Poetry lock."""
    return next((source / name for name in (LOCK_FILE, *TOOL_LOCKS) if (source / name).is_file()), None)


def _tool(name: str) -> str | None:
    """A command on PATH, or beside this interpreter (a virtual environment that is not activated)."""
    beside = Path(sys.executable).with_name(name)
    return shutil.which(name) or (str(beside) if beside.is_file() else None)


def export_lock(lock: Path, output: Path) -> None:
    """Export a uv or Poetry lock to requirements.txt form (pins and hashes) with its own tool."""
    name, arguments = TOOL_LOCKS[lock.name]
    tool = _tool(name)
    if tool is None:
        raise BundlingError(f"{lock} needs `{name}` to export it, and {name} is not installed; install {name}, "
                            f"or write {LOCK_FILE} yourself (e.g. `{name} export ... > {LOCK_FILE}`)")
    done = _run([tool, *arguments, str(output)], PIP_TIMEOUT_S, f"{name} export", cwd=lock.parent)
    if done.returncode != 0:
        raise BundlingError(f"`{name} export` could not export {lock}:\n{(done.stderr or done.stdout)[-2000:]}")


def _run(command: list[str], timeout: float, what: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise BundlingError(f"{what} did not finish within {timeout:g} s: {' '.join(command[:6])} ...; "
                            "check the network to the package index and try again") from None


def _pip_errors(output: str) -> str:
    """pip's ERROR lines, or its last lines; each cut short (version lists run to kilobytes)."""
    lines = [line for line in output.strip().splitlines() if line.startswith("ERROR")]
    return "\n".join(line if len(line) < 300 else line[:300] + " …" for line in lines or output.strip().splitlines()[-10:])


def _ignored(directory: str, names: list[str]) -> set[str]:
    return {n for n in names for pattern in CODE_EXCLUDES if fnmatch.fnmatch(n, pattern)}


def copy_code(source: Path, destination: Path) -> None:
    """The user's source, then the runtime package beside it (unless the source is where it lives)."""
    shutil.copytree(source, destination, ignore=_ignored, dirs_exist_ok=True)
    if not (source / RUNTIME_NAME).is_dir():
        shutil.copytree(RUNTIME_PACKAGE, destination / RUNTIME_NAME, ignore=_ignored)


def bundling_options(kind: Kind, *, source: Path, target: BundlingTarget) -> BundlingOptions:
    """``BundlingOptions`` for a layer or code asset, built by :class:`LocalPythonBundler`."""
    return BundlingOptions(
        # CDK requires an image; it is never pulled, the local bundler always succeeds or raises.
        image=DockerImage.from_registry("local-bundling-only"),
        platform=f"linux/{'arm64' if target.architecture == 'arm64' else 'amd64'}",
        environment=target.hash_inputs(kind),
        local=LocalPythonBundler(kind=kind, source=source, target=target),
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


def dependencies_code(*, source: Path, target: BundlingTarget) -> lambda_.Code:
    """Layer code: only the lock (and a uv/Poetry project file) is part of the asset's files."""
    return lambda_.Code.from_asset(
        str(source),
        exclude=["*", ".*", *(f"!{name}" for name in LOCK_INPUTS)],  # globs skip dotfiles unless named
        bundling=bundling_options("layer", source=source, target=target),
    )


def application_code(*, source: Path, target: BundlingTarget) -> lambda_.Code:
    """Function code: the application source without the lock or caches, plus the runtime package."""
    return lambda_.Code.from_asset(
        str(source),
        exclude=list(CODE_EXCLUDES),
        bundling=bundling_options("code", source=source, target=target),
    )


def build_locally(kind: Kind, output_dir: Path, *, source: Path = LAMBDA_SRC, target: BundlingTarget) -> Path:
    """Build an asset outside CDK (benchmarks, import tests); returns ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    LocalPythonBundler(kind=kind, source=source, target=target).try_bundle(str(output_dir))
    return output_dir
