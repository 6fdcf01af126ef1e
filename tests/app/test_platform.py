"""A bundle built for the other architecture is named as such, not as a missing pydantic_core module."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydantic_core
import pytest
from fastapi_lambda.platform import (
    ArchitectureMismatch,
    architecture_check,
    file_architecture,
    foreign_architecture,
    machine_architecture,
)

LAMBDA_SRC = Path(__file__).resolve().parents[2] / "lambda_src"
HERE = machine_architecture()
OTHER = {"x86_64": "arm64", "arm64": "x86_64"}.get(HERE, "")
MACHINE_TAG = {"x86_64": "x86_64", "arm64": "aarch64"}


def foreign_pydantic_core(bundle: Path) -> None:
    """The real pydantic_core, its compiled module renamed as pip installs it for the other architecture."""
    shutil.copytree(Path(pydantic_core.__file__).parent, bundle / "pydantic_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (native,) = (bundle / "pydantic_core").glob("_pydantic_core.*.so")
    tag = MACHINE_TAG[HERE]
    native.rename(native.with_name(native.name.replace(f"-{tag}-", f"-{MACHINE_TAG[OTHER]}-")))


def test_names_of_this_machine():
    assert machine_architecture("aarch64") == machine_architecture("arm64") == "arm64"
    assert machine_architecture("AMD64") == "x86_64"


def test_reads_the_elf_header_when_the_name_has_no_tag():
    # The interpreter itself is an ELF file built for this machine.
    assert file_architecture(os.path.realpath(sys.executable)) == HERE
    assert file_architecture(__file__) is None


def test_finds_only_what_was_built_for_another_machine(tmp_path):
    assert foreign_architecture([str(Path(pydantic_core.__file__).parent)]) is None
    if OTHER:
        foreign_pydantic_core(tmp_path)
        assert foreign_architecture([str(Path(pydantic_core.__file__).parent), str(tmp_path)]) == OTHER


def test_other_import_errors_pass_unchanged(tmp_path):
    with pytest.raises(ModuleNotFoundError, match="no_such_module") as raised:
        with architecture_check([str(tmp_path)]):
            importlib.import_module("no_such_module")
    assert not isinstance(raised.value, ArchitectureMismatch)


@pytest.mark.skipif(not OTHER, reason=f"no other Lambda architecture than {HERE}")
def test_entry_names_a_foreign_bundle(tmp_path):
    """Lambda's view: the generic entry point imported from a bundle built for the other architecture."""
    bundle = tmp_path / "task"
    foreign_pydantic_core(bundle)
    (bundle / "orders.py").write_text("import pydantic_core\napp = object()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(bundle), str(LAMBDA_SRC)]),
           "FASTAPI_LAMBDA_APP": "orders:app"}
    done = subprocess.run([sys.executable, "-c", "import fastapi_lambda.entry"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("fastapi_lambda.platform.ArchitectureMismatch: "
                           f"this bundle is {OTHER} but this machine is {HERE}"), done.stderr[-2000:]
    assert f"set architecture={HERE}" in last
    assert "pydantic_core._pydantic_core" in last  # the original error is kept
