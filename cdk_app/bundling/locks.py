"""The dependency lock of a source folder: found, exported from uv or Poetry, read as pinned requirement lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from cdk_app.bundling.target import BundlingError

LOCK_FILE = "requirements.txt"
#: Other locks, exported to requirements.txt form by their own tool (which must be installed).
TOOL_LOCKS = {
    "uv.lock": ("uv", ["export", "--frozen", "--no-dev", "--no-emit-project", "--format", "requirements-txt",
                       "--output-file"]),
    "poetry.lock": ("poetry", ["export", "--format", "requirements.txt", "--output"]),
}
#: The files of a source folder that make up the layer asset (and its hash).
LOCK_INPUTS = (LOCK_FILE, *TOOL_LOCKS, "pyproject.toml")
#: Seconds before a pip, export or compileall run is given up (a hung index, a huge tree).
PIP_TIMEOUT_S = 900

#: The Lambda Python runtimes already ship these; bundling them only adds weight.
AWS_SDK_PACKAGES = frozenset({"boto3", "botocore", "s3transfer"})


def find_lock(source: Path) -> Path | None:
    """The source's lock: requirements.txt, else a uv or Poetry lock."""
    return next((source / name for name in (LOCK_FILE, *TOOL_LOCKS) if (source / name).is_file()), None)


def _tool(name: str) -> str | None:
    """A command on PATH, or beside this interpreter (a virtual environment that is not activated)."""
    beside = Path(sys.executable).with_name(name)
    return shutil.which(name) or (str(beside) if beside.is_file() else None)


def run_tool(command: list[str], timeout: float, what: str,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a build tool (pip, compileall, uv, poetry), giving up with a clear error after ``timeout`` seconds."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise BundlingError(f"{what} did not finish within {timeout:g} s: {' '.join(command[:6])} ...; "
                            "check the network to the package index and try again") from None


def export_lock(lock: Path, output: Path) -> None:
    """Export a uv or Poetry lock to requirements.txt form (pins and hashes) with its own tool."""
    name, arguments = TOOL_LOCKS[lock.name]
    tool = _tool(name)
    if tool is None:
        raise BundlingError(f"{lock} needs `{name}` to export it, and {name} is not installed; install {name}, "
                            f"or write {LOCK_FILE} yourself (e.g. `{name} export ... > {LOCK_FILE}`)")
    done = run_tool([tool, *arguments, str(output)], PIP_TIMEOUT_S, f"{name} export", cwd=lock.parent)
    if done.returncode != 0:
        raise BundlingError(f"`{name} export` could not export {lock}:\n{(done.stderr or done.stdout)[-2000:]}")


def _logical_lines(text: str) -> list[str]:
    """The lock's requirement lines, continuations joined and comments dropped."""
    joined = text.replace("\\\n", " ")
    return [" ".join(line.split(" #", 1)[0].split()) for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def locked_requirements(lock_file: Path, *, include_aws_sdk: bool) -> list[str]:
    """The requirement lines of the lock (hashes kept), without the AWS SDK unless asked for."""
    lines: list[str] = []
    for line in _logical_lines(lock_file.read_text()):
        if line.startswith("-"):  # pip options (--index-url, --hash on its own line ...)
            lines.append(line)
            continue
        try:
            requirement = Requirement(line.split(" --", 1)[0])
        except InvalidRequirement as exc:
            raise BundlingError(f"{lock_file}: '{line}' is not a valid requirement ({exc}).") from None
        if not include_aws_sdk and is_aws_sdk(line):
            continue
        pins = [spec for spec in requirement.specifier if spec.operator in ("==", "===")]
        if not pins and not requirement.url:
            raise BundlingError(f"{lock_file}: '{line}' is not pinned; the lock must pin exact versions (name==version).")
        lines.append(line)
    return lines


def is_aws_sdk(line: str) -> bool:
    return not line.startswith("-") and canonicalize_name(Requirement(line.split(" --", 1)[0]).name) in AWS_SDK_PACKAGES


def uses_hashes(lines: list[str]) -> bool:
    return any("--hash" in line for line in lines)
