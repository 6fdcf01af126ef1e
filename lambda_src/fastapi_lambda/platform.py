"""Name an architecture mismatch when a bundle fails to import.

A bundle built for arm64 and run on x86_64 (or the reverse) fails deep inside a compiled
dependency: ``No module named 'pydantic_core._pydantic_core'`` says nothing about the cause.
:func:`architecture_check` wraps the import of the app: when it fails, it looks at the
compiled modules on ``sys.path`` and, if they were built for another machine, raises an
:class:`ArchitectureMismatch` that says so and how to fix it. Nothing runs on success, and
the module imports only what the interpreter has already loaded, so the cold path pays nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager

#: Lambda's word for each machine name (``uname -m``, extension module suffixes, ELF headers).
ARCHITECTURES = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}
#: ELF ``e_machine`` values of the two Lambda architectures.
_ELF_MACHINES = {0xB7: "arm64", 0x3E: "x86_64"}
#: How many shared objects to look at before giving up (only after an import failed).
_MAX_FILES = 2000


class ArchitectureMismatch(ImportError):
    """The bundle's compiled dependencies were built for another architecture than this machine's."""


def machine_architecture(machine: str | None = None) -> str:
    """This machine's architecture in Lambda's words (``arm64`` or ``x86_64``); other names pass through."""
    name = (machine or os.uname().machine).lower()
    return ARCHITECTURES.get(name, name)


def _shared_objects(paths: Iterable[str]) -> Iterator[str]:
    for entry in paths:
        if not entry or not os.path.isdir(entry):
            continue
        for folder, _, files in os.walk(entry):
            for name in files:
                if name.endswith(".so") or ".so." in name:
                    yield os.path.join(folder, name)


def file_architecture(path: str) -> str | None:
    """The architecture a shared object was built for: its name's platform tag, else its ELF header."""
    for part in os.path.basename(path).split("."):
        for tag, architecture in ARCHITECTURES.items():
            if part.endswith(f"-{tag}-linux-gnu") or part.endswith(f"-{tag}-linux-musl"):
                return architecture
    try:
        with open(path, "rb") as file:
            header = file.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    byteorder = "little" if header[5] == 1 else "big"
    return _ELF_MACHINES.get(int.from_bytes(header[18:20], byteorder))


def foreign_architecture(paths: Iterable[str] | None = None, machine: str | None = None) -> str | None:
    """The architecture of the first compiled module on ``paths`` (default ``sys.path``) that was built for
    another machine than this one (or ``machine``), if any."""
    here = machine_architecture(machine)
    for count, path in enumerate(_shared_objects(sys.path if paths is None else paths)):
        if count >= _MAX_FILES:
            break
        if (architecture := file_architecture(path)) not in (None, here):
            return architecture
    return None


def mismatch_message(bundle: str, machine: str) -> str:
    return (f"this bundle is {bundle} but this machine is {machine}: its compiled dependencies cannot load here. "
            f"Run it on {bundle} (the function's architecture), or build it for this machine: "
            f"set architecture={machine} (BundlingTarget(architecture={machine!r}), "
            f"or function.architecture in cdk.json) and synthesize again.")


@contextmanager
def architecture_check(paths: Iterable[str] | None = None, machine: str | None = None) -> Generator[None, None, None]:
    """Re-raise an ``ImportError`` inside as :class:`ArchitectureMismatch` when the bundle was built for another
    machine; any other error passes unchanged."""
    try:
        yield
    except ImportError as error:
        if isinstance(error, ArchitectureMismatch):
            raise
        bundle = foreign_architecture(paths, machine)
        if bundle is None:
            raise
        raise ArchitectureMismatch(f"{mismatch_message(bundle, machine_architecture(machine))} "
                                   f"(the import failed with: {error})") from error
