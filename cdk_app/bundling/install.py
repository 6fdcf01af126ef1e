"""Installing and copying what goes into the assets: pip for the Lambda platform, a completeness check, ``.pyc``.

The layer is built with ``pip install --platform ... --only-binary=:all: --target`` from the
pinned lock (plus what the runtime package needs), resolved for the target architecture and
Python version, then checked: every installed distribution's requirements must be installed
too, or synth stops naming what is missing. Both assets ship ``.pyc`` files compiled by an
interpreter of exactly the target version (``--invalidation-mode unchecked-hash``): ``/var/task``
and ``/opt`` are read-only on Lambda, so without them every cold start compiles every module again.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from fastapi_lambda.constants import RUNTIME_REQUIREMENTS
from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cdk_app.bundling.locks import (
    AWS_SDK_PACKAGES,
    LOCK_INPUTS,
    PIP_TIMEOUT_S,
    TOOL_LOCKS,
    export_lock,
    find_lock,
    is_aws_sdk,
    locked_requirements,
    run_tool,
    uses_hashes,
)
from cdk_app.bundling.target import RUNTIME_NAME, RUNTIME_PACKAGE, BundlingError, BundlingTarget

COMPILE_TIMEOUT_S = 300
#: Never part of the function code asset (also excluded from its hash).
CODE_EXCLUDES = (*LOCK_INPUTS, "__pycache__", "*.pyc", "tests", ".*", "*.egg-info")

#: Removed from installed dependencies: console scripts carry absolute shebangs,
#: RECORD files list hashes of files we delete, tests are dead weight.
_STRIP_DIRS = frozenset({"bin", "tests", "__pycache__"})
_STRIP_FILES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})

_PLATFORM_TAGS = ("manylinux_2_34", "manylinux_2_28", "manylinux2014")


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
    done = run_tool(command, COMPILE_TIMEOUT_S, "compileall")
    if done.returncode != 0:
        # A module that does not compile cannot be imported either; report, don't fail.
        print(f"[bundling] warning: some modules did not compile:\n{done.stdout[-2000:]}", file=sys.stderr)


def install_dependencies(source: Path, site: Path, target: BundlingTarget) -> None:
    """Install the lock of ``source`` (and what the runtime package needs) into ``site`` for ``target``,
    checked complete, stripped for a reproducible tree."""
    site.mkdir(parents=True, exist_ok=True)
    lock = find_lock(source)
    if lock is None:
        raise BundlingError(f"{source} has no dependency lock ({', '.join(LOCK_INPUTS[:-1])}); "
                            "create requirements.txt with exact pins (name==version).")
    pins = lock
    if lock.name in TOOL_LOCKS:
        pins = site.parent / "exported-requirements.txt"
        export_lock(lock, pins)
    # Hash-checking mode resolves nothing: a hashed lock goes in whole (an SDK a dependency needs
    # included, taken out after the install) and unhashed runtime needs cannot be added.
    wanted = locked_requirements(pins, include_aws_sdk=True)
    hashed = uses_hashes(wanted)
    if pins is not lock:
        pins.unlink()
    if not hashed and not target.include_aws_sdk:
        wanted = [line for line in wanted if not is_aws_sdk(line)]
    requested = wanted if hashed else [*wanted, *RUNTIME_REQUIREMENTS]
    filtered = site.parent / "requirements.lock.txt"
    filtered.write_text("\n".join(requested) + "\n")
    try:
        done = run_tool(pip_install_command(filtered, site, target), PIP_TIMEOUT_S, "pip")
    finally:
        filtered.unlink()
    where = f"{lock} for Python {target.python_version} on {target.architecture}"
    if done.returncode != 0:
        raise BundlingError(
            f"pip could not install {where} (manylinux wheels only, no source builds):\n"
            f"{_pip_errors(done.stderr or done.stdout)}\n"
            "Check the pins in the lock and that every package publishes a wheel for this platform."
        )
    if not target.include_aws_sdk:
        remove_distributions(site, AWS_SDK_PACKAGES)
    missing = unmet_requirements(site, target, wanted, RUNTIME_REQUIREMENTS)
    if missing:
        raise BundlingError(f"The bundle of {where} is incomplete:\n  " + "\n  ".join(missing)
                            + "\nAdd the missing packages to the lock with exact pins (and hashes if it has them).")
    strip_installed(site)


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
