"""Finding a Python interpreter of an exact version on this machine, to compile ``.pyc`` as Lambda imports them.

No CDK import: the local stack (:mod:`cdk_app.local`) calls it too, and importing ``aws_cdk``
starts Node.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


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
