"""The request examples of README.md and docs/ (blocks marked ``<!-- docs-test: local -->``), run against the
dev stack as ``make local`` serves it, with ``make token``'s exports: each answers the status its comment says."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from tests.docs.markdown import DOCUMENTS, REPO, blocks, requests
from tests.local.conftest import RunningStack

pytestmark = pytest.mark.slow

EXAMPLES = [(document.relative_to(REPO).as_posix(), command, status)
            for document in DOCUMENTS for block in blocks(document, "local") for command, status in requests(block)]


@pytest.fixture(scope="module")
def shell(dev_assembly):
    """The environment after ``make local`` and ``eval "$(make token)"``."""
    running = RunningStack(dev_assembly)
    try:
        done = subprocess.run([sys.executable, "-m", "cdk_app.local.token", "--port", str(running.port)], cwd=REPO,
                              capture_output=True, text=True, timeout=60, check=True)
        exports = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in done.stdout.splitlines())
        yield {**os.environ, **exports, "ids": {}}
    finally:
        running.stop()


def test_the_docs_have_examples_to_run():
    documents = {document for document, _, _ in EXAMPLES}
    assert {"README.md", "docs/tasks.md"} <= documents
    assert any("POST" in command and status == 202 for _, command, status in EXAMPLES)


@pytest.mark.parametrize(("document", "command", "status"), EXAMPLES,
                         ids=[f"{d}:{c[:60]}" for d, c, _ in EXAMPLES])
def test_example_answers_as_documented(shell, document, command, status):
    env = {k: v for k, v in shell.items() if isinstance(v, str)}
    # A placeholder names what an earlier example answered: <id> is the last task id.
    command = command.replace("<id>", shell["ids"].get("task", "<id>"))
    done = subprocess.run(["bash", "-c", f"{command} -s -o /dev/stdout -w '\\n%{{http_code}}'"], env=env,
                          capture_output=True, text=True, timeout=120)
    body, _, code = done.stdout.rpartition("\n")
    assert done.returncode == 0, done.stderr
    assert int(code) == status, f"{document}: {command}\nanswered {code}: {body[:500]}"
    try:
        answer = json.loads(body)
    except ValueError:
        return
    if status == 202 and isinstance(answer, dict) and "id" in answer:
        shell["ids"]["task"] = answer["id"]
