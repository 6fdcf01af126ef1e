"""A real ``redis-server`` with TLS and a password, as the ElastiCache stand-in (the tests' and the bench's).

The server, its discovery and its throwaway certificates are the local stack's
(:mod:`cdk_app.local.redis`: ``$REDIS_SERVER``, the one ``make setup`` builds into .venv with
tests/app/redis_build.py, or one on PATH); :class:`HungServer` accepts connections and never answers.
"""

from __future__ import annotations

import socket
import threading

from cdk_app.local.processes import free_port
from cdk_app.local.redis import REDIS_SERVER, RedisServer, find_redis_server, make_certificates, server_version

__all__ = ["REDIS_SERVER", "SKIP_REASON", "HungServer", "RedisServer", "find_redis_server", "free_port",
           "make_certificates", "server_version"]

SKIP_REASON = ("no redis-server found: `make setup` builds one with TLS into .venv (tests/app/redis_build.py), "
               "or install one, or set REDIS_SERVER=/path/to/redis-server")


class HungServer:
    """Accepts TCP connections and never answers (a frozen node): the client can only time out."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed
                return
            self.connections.append(connection)

    def close(self) -> None:
        for connection in [*self.connections, self.socket]:
            connection.close()
