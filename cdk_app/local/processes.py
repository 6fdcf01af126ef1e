"""What every part of a local run shares: child processes and small HTTP servers.

Processes are started by their owners and stopped here (terminate, then kill); servers are
threaded, keep connections alive (HTTP/1.1), send small answers without Nagle's delay, and do
not print a traceback when a client hangs up.
"""

from __future__ import annotations

import socket
import socketserver
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cdk_app.local.template import LocalError

#: Children get a process group of their own: Ctrl+C in the terminal reaches only the local stack's
#: process, which then stops them in order (they stay in its session, and end with it).
CHILD_GROUP = 0  # Popen(process_group=...): a new group whose id is the child's


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, process: subprocess.Popen[Any] | None = None,
               log: Path | None = None) -> None:
    """Poll ``check`` until it is true; a clear error if ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise LocalError(f"{what} exited with code {process.returncode}" + (f"; see {log}" if log else ""))
        if time.monotonic() > deadline:
            raise LocalError(f"{what} was not ready within {timeout:.0f} s" + (f"; see {log}" if log else ""))
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 10) -> None:
    """Terminate ``process`` and wait for it; kill it if it does not end within ``timeout``."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def port_of(server: socketserver.BaseServer) -> int:
    """The port a TCP server listens on (its address is a (host, port) tuple; the types allow a socket path)."""
    address = server.server_address
    return int(address[1]) if isinstance(address, tuple) else 0


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that prints no traceback when a client hangs up."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """A request handler that keeps the connection, logs nothing, and answers in one call."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small writes would otherwise wait for delayed ACKs (~40 ms each)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] | Sequence[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for name, value in headers.items() if isinstance(headers, Mapping) else headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
