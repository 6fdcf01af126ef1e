"""Fixtures for the local stack: real assemblies (bundled for this machine) and running local stacks.

Each assembly is synthesized once per session with the real CDK CLI and bundler (pip into the
layer), both at once; a local stack runs as ``python -m cdk_app.local`` in a session of its own,
so that the test can check that nothing it started outlives it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cdk_app.bundling import find_python
from cdk_app.local.runtime import host_architecture

REPO = Path(__file__).resolve().parents[2]
CDK_CLI = REPO / "node_modules" / ".bin" / "cdk"
EVENTS = REPO / "examples" / "events"
READY = re.compile(r"^local: ready (http://127\.0\.0\.1:(\d+)\S*)")


def needs_bundles() -> None:
    if find_python("3.13") is None or not CDK_CLI.exists():
        pytest.skip("needs Python 3.13 and the CDK CLI (make setup)")


class Synth:
    """``cdk synth`` of one app into ``outdir``, started now and awaited on :meth:`wait`."""

    def __init__(self, outdir: Path, app: str, cwd: Path, *context: str) -> None:
        self.outdir = outdir
        env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
        command = [str(CDK_CLI), "synth", "--quiet", "--app", app, "--output", str(outdir)]
        for item in context:
            command += ["-c", item]
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)

    def wait(self) -> Path:
        output, _ = self.process.communicate(timeout=900)
        assert self.process.returncode == 0, output[-4000:]
        return self.outdir


@pytest.fixture(scope="session")
def synths(tmp_path_factory) -> dict[str, Synth]:
    """The dev stack (as make local builds it) and examples/consumer, synthesized side by side."""
    needs_bundles()
    root = tmp_path_factory.mktemp("local-assemblies")
    return {
        "dev": Synth(root / "dev", f"{sys.executable} -m cdk_app.local.synth", REPO, "env=dev"),
        "consumer": Synth(root / "consumer", f"{sys.executable} app.py", REPO / "examples" / "consumer",
                          f"architecture={host_architecture()}"),
    }


@pytest.fixture(scope="session")
def dev_assembly(synths) -> Path:
    return synths["dev"].wait()


@pytest.fixture(scope="session")
def consumer_assembly(synths) -> Path:
    return synths["consumer"].wait()


def session_members(session_id: int) -> list[int]:
    """Every process still in the session ``session_id`` (field 6 of /proc/<pid>/stat)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:
            members.append(int(stat.parent.name))
    return members


class RunningStack:
    """``python -m cdk_app.local`` in its own session; its output is kept in :attr:`lines`."""

    def __init__(self, assembly: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cdk_app.local", str(assembly), "--port", "0", *args], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(300) or not self.url:
            self.stop()
            raise AssertionError("the local stack did not get ready:\n" + "\n".join(self.lines[-60:]))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            found = READY.match(line)
            if found:
                self.url, self.port = found.group(1).rstrip("/") + "/", int(found.group(2))
                self.ready.set()
        self.ready.set()

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> list[int]:
        """Ctrl+C, then the processes left in its session (none, when it cleaned up)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        deadline = time.monotonic() + 5
        while (left := session_members(self.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:  # reported by the caller; not left running either way
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


def call(method: str, url: str, *, token: str | None = None, body: object = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """One HTTP request: the status, the headers (lower-case names) and the body (JSON when it is: Any, as the
    tests read it)."""
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        **({"Authorization": f"Bearer {token}"} if token else {}),
        **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, answer_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, raw = error.code, dict(error.headers), error.read()
    try:
        parsed: object = json.loads(raw)
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, {k.lower(): v for k, v in answer_headers.items()}, parsed


def wait_for(check, *, timeout: float = 60, interval: float = 0.25, what: str = "the condition"):
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)
