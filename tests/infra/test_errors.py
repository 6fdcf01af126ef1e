"""A consumer's CDK app that fails for a reason the constructs explain prints that reason alone.

Each case runs a real app in a subprocess, as ``cdk synth`` does, and reads its stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cdk_app.errors import TRACEBACK_VARIABLE, explain

REPO = Path(__file__).resolve().parents[2]

APP = """
import sys
from aws_cdk import App, Stack
from cdk_app.errors import install_excepthook, one_line_errors

if {hook}:
    install_excepthook()
app = App(outdir=sys.argv[1])
stack = Stack(app, "consumer")
with (one_line_errors() if {context_manager} else __import__("contextlib").nullcontext()):
{body}
    app.synth()
"""

UNPINNED_LOCK = """
    from cdk_app import BundlingTarget, DependenciesLayer
    layers = DependenciesLayer(stack, "Dependencies", source=sys.argv[2], target=BundlingTarget(python_version="3.13"))
    layers.layer_for(["http"])  # the layer of one dependency set: bundled here, refused for the unpinned lock
"""
BAD_PROP = """
    from cdk_app.observability import Observability
    Observability(stack, "Observability", api_5xx_percent=0)
"""
OTHER_ERROR = """
    {}["missing"]
"""


def run(tmp_path: Path, body: str, *, hook: bool = False, context_manager: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "src"
    source.mkdir()
    (source / "requirements.txt").write_text("fastapi\n")
    script = tmp_path / "app.py"
    script.write_text(APP.format(hook=hook, context_manager=context_manager,
                                 body=textwrap.indent(textwrap.dedent(body), "    ")))
    return subprocess.run([sys.executable, str(script), str(tmp_path / "cdk.out"), str(source)], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, capture_output=True, text=True,
                          timeout=180)


@pytest.mark.parametrize("hook", [False, True], ids=["context manager", "excepthook"])
def test_an_unpinned_lock_is_one_line_naming_the_asset_and_the_fix(tmp_path, hook):
    done = run(tmp_path, UNPINNED_LOCK, hook=hook, context_manager=not hook)

    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if not line.startswith("Bundling asset")]
    assert lines == [f"consumer/Dependencies/LayerHttp: {tmp_path}/src/requirements.txt: 'fastapi' is not pinned; "
                     "the lock must pin exact versions (name==version)."], done.stderr


def test_a_construct_prop_error_is_its_message(tmp_path):
    done = run(tmp_path, BAD_PROP)

    assert done.returncode == 1
    assert done.stderr.splitlines() == ["api_5xx_percent=0 must be a percentage in (0, 100]"]


def test_the_traceback_on_request(tmp_path):
    done = run(tmp_path, BAD_PROP, env={TRACEBACK_VARIABLE: "1"})

    assert done.returncode == 1
    assert "Traceback" in done.stderr and "observability.py" in done.stderr


def test_other_errors_keep_their_traceback(tmp_path):
    done = run(tmp_path, OTHER_ERROR)

    assert done.returncode == 1
    assert "Traceback" in done.stderr and "KeyError: 'missing'" in done.stderr


def test_a_value_error_from_elsewhere_is_not_shortened():
    try:
        int("not a number")
    except ValueError as error:
        assert explain(error) is None
