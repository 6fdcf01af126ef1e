"""Installing and copying what goes into the assets: pip for the Lambda platform, a completeness check, ``.pyc``.

The layer is built with ``pip install --platform ... --only-binary=:all: --target`` from the
pinned lock (plus what every capability of the runtime package needs), resolved for the target
architecture and Python version, then pruned to what the function's capabilities need (no
``redis`` without a cache) and checked: every requirement of a kept distribution and of a used
capability must be installed, or synth stops naming what is missing and which capability needs it. Both assets ship ``.pyc`` files compiled by an
interpreter of exactly the target version (``--invalidation-mode unchecked-hash``): ``/var/task``
and ``/opt`` are read-only on Lambda, so without them every cold start compiles every module again.
"""

from __future__ import annotations

import atexit
import fnmatch
import hashlib
import importlib.metadata
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from fastapi_lambda.requirements import (
    CAPABILITIES,
    CAPABILITY_REQUIREMENTS,
    Capability,
    powertools_modules,
    requirements_for,
)
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
from cdk_app.bundling.powertools import DISTRIBUTION as POWERTOOLS
from cdk_app.bundling.powertools import app_imports, prune_powertools
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
    """Uninstall distributions from ``site``: the AWS SDK a dependency pulled in (the runtime provides it), or
    what no capability of the function needs. File by file, as their RECORD lists them: a namespace
    package's folder (``opentelemetry/``) may hold other distributions' files too."""
    for name, dist in _distributions(site).items():
        if name not in names:
            continue
        files = [site / Path(str(f)) for f in dist.files or () if ".." not in Path(str(f)).parts]
        for path in files:  # RECORD itself is among them: the list is read first
            path.unlink(missing_ok=True)
        for folder in sorted({p.parent for p in files if p.parent != site}, key=lambda p: len(p.parts), reverse=True):
            while folder != site and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent


#: Requirements with who needs them, as the completeness check names them.
Needs = Sequence[tuple[Requirement, str]]


def _walk(site: Path, target: BundlingTarget, roots: Needs) -> tuple[set[str], list[str]]:
    """The distributions of ``site`` that ``roots`` need (transitively, for ``target``), and what is unmet.

    Runtime-provided packages (the AWS SDK, unless it is bundled) count as present. Read from
    the files: the ``*.dist-info`` metadata in ``site``.
    """
    installed = _distributions(site)
    provided: frozenset[str] = frozenset() if target.include_aws_sdk else AWS_SDK_PACKAGES
    environment = target.marker_environment()
    problems: list[str] = []
    reached: set[str] = set()
    pending = list(roots)
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
        reached.add(name)
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
    return reached, sorted(set(problems))


def _lock_needs(wanted: Sequence[str]) -> list[tuple[Requirement, str]]:
    return [(Requirement(line.split(" --", 1)[0]), "the lock") for line in wanted if not line.startswith("-")]


def _capability_needs(needs: Mapping[str, Sequence[str]]) -> list[tuple[Requirement, str]]:
    return [(Requirement(line), f"the {capability} capability of {RUNTIME_NAME}") for capability, lines in needs.items()
            for line in lines]


def unmet_requirements(site: Path, target: BundlingTarget, wanted: Sequence[str],
                       runtime: Mapping[str, Sequence[str]]) -> list[str]:
    """What the installed tree needs but lacks, evaluated for ``target``; empty when complete.

    ``wanted`` are the top-level requirement lines (the lock), ``runtime`` what the runtime
    package needs, per capability (each problem names the capability that needs it).
    """
    return _walk(site, target, [*_lock_needs(wanted), *_capability_needs(runtime)])[1]


def prune(site: Path, target: BundlingTarget, wanted: Sequence[str], needs: Mapping[str, Sequence[str]],
          unused: Sequence[str]) -> list[str]:
    """Keep in ``site`` only what the function's capabilities and the rest of the lock need; returns what is unmet.

    ``needs`` are the requirements of the capabilities the function uses; ``unused`` those of the
    ones it does not. A lock line that only an unused capability pulls in (``redis`` without a
    cache, ``cryptography`` without token verification) is not the app's own, so it goes, unless
    something kept needs it.
    """
    unused_closure, _ = _walk(site, target, [(Requirement(line), "") for line in unused])
    roots = [root for root in _lock_needs(wanted) if canonicalize_name(root[0].name) not in unused_closure]
    kept, problems = _walk(site, target, [*roots, *_capability_needs(needs)])
    remove_distributions(site, frozenset(_distributions(site)) - kept)
    return problems


def compile_bytecode(directory: Path, *, python: tuple[str, ...], runtime_path: str) -> None:
    """Compile every module with the target interpreter, as Lambda will import it."""
    command = [*python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
               "-s", str(directory), "-p", runtime_path, str(directory)]
    done = run_tool(command, COMPILE_TIMEOUT_S, "compileall")
    if done.returncode != 0:
        # A module that does not compile cannot be imported either; report, don't fail.
        print(f"[bundling] warning: some modules did not compile:\n{done.stdout[-2000:]}", file=sys.stderr)


#: Installs of a whole lock (with every capability's needs) already made in this process, by what they were
#: made from: another dependency set of the same lock is then a copy, pruned, not another pip run.
_INSTALLED: dict[tuple[str, ...], tuple[Path, list[str]]] = {}


def _cleanup() -> None:
    for folder, _ in _INSTALLED.values():
        shutil.rmtree(folder.parent, ignore_errors=True)


atexit.register(_cleanup)


def install_dependencies(source: Path, site: Path, target: BundlingTarget,
                         capabilities: Iterable[Capability] | None = None) -> None:
    """Install what the function's ``capabilities`` need from the lock of ``source`` into ``site`` for ``target``,
    checked complete, stripped for a reproducible tree.

    ``capabilities`` (default: all of them) are the runtime package's
    (:data:`fastapi_lambda.requirements.CAPABILITY_REQUIREMENTS`): their requirements are added
    to the lock, and what only the others would pull in is left out.
    """
    used: set[Capability] = set(CAPABILITIES) if capabilities is None else {"core", *capabilities}
    needs = {c: CAPABILITY_REQUIREMENTS[c] for c in CAPABILITIES if c in used and CAPABILITY_REQUIREMENTS[c]}
    kept = requirements_for(used)
    unused = [line for c in CAPABILITIES if c not in used for line in CAPABILITY_REQUIREMENTS[c] if line not in kept]
    wanted, where = _install_lock(source, site, target)
    missing = prune(site, target, wanted, needs, unused)
    if missing:
        raise BundlingError(f"The bundle of {where} is incomplete:\n  " + "\n  ".join(missing)
                            + "\nAdd the missing packages to the lock with exact pins (and hashes if it has them), "
                              "or turn off the capability that needs them.")
    if not _needed_by_other_packages(site, POWERTOOLS):  # a library built on Powertools may import any of it
        prune_powertools(site, powertools_modules(used), app_imports(source, skip=RUNTIME_NAME))
    strip_installed(site)


def _needed_by_other_packages(site: Path, name: str) -> bool:
    """Whether a distribution in ``site`` other than ``name`` requires ``name``."""
    return any(canonicalize_name(Requirement(line).name) == name
               for other, dist in _distributions(site).items() if other != name for line in dist.requires or ())


def _install_lock(source: Path, site: Path, target: BundlingTarget) -> tuple[list[str], str]:
    """The lock and every capability's requirements, installed into ``site`` without the AWS SDK; returns the
    lock's requirement lines and a description of what was installed, for messages."""
    site.mkdir(parents=True, exist_ok=True)
    lock = find_lock(source)
    if lock is None:
        raise BundlingError(f"{source} has no dependency lock ({', '.join(LOCK_INPUTS[:-1])}); "
                            "create requirements.txt with exact pins (name==version).")
    where = f"{lock} for Python {target.python_version} on {target.architecture}"
    inputs = [source / name for name in LOCK_INPUTS if (source / name).is_file()]
    key = (repr(target), *(f"{f.name}:{hashlib.sha256(f.read_bytes()).hexdigest()}" for f in inputs))
    if key in _INSTALLED:
        done_site, wanted = _INSTALLED[key]
        shutil.copytree(done_site, site, dirs_exist_ok=True)
        return list(wanted), where
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
    requested = wanted if hashed else [*wanted, *requirements_for(set(CAPABILITIES))]
    filtered = site.parent / "requirements.lock.txt"
    filtered.write_text("\n".join(requested) + "\n")
    try:
        done = run_tool(pip_install_command(filtered, site, target), PIP_TIMEOUT_S, "pip")
    finally:
        filtered.unlink()
    if done.returncode != 0:
        raise BundlingError(
            f"pip could not install {where} (manylinux wheels only, no source builds):\n"
            f"{_pip_errors(done.stderr or done.stdout)}\n"
            "Check the pins in the lock and that every package publishes a wheel for this platform."
        )
    if not target.include_aws_sdk:
        remove_distributions(site, AWS_SDK_PACKAGES)
    keep = Path(tempfile.mkdtemp(prefix="fastapi-lambda-layer-")) / "python"
    shutil.copytree(site, keep)
    _INSTALLED[key] = (keep, list(wanted))
    return wanted, where


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
