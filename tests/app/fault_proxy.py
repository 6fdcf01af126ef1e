"""A TCP proxy on loopback in front of the moto server that can fail the way AWS endpoints do.

Modes: ``pass`` (bytes go through), ``refuse`` (nothing listens: connections are refused),
``hang`` (a connection is accepted and never answered), ``throttle`` (every request gets the
400 ``ThrottlingException`` answer of AWS's JSON protocols: DynamoDB, SQS, SSM, Secrets
Manager). Point a service at it with ``AWS_ENDPOINT_URL_<SERVICE>``; ``requests`` counts what
reached it. Threads only, stopped by :meth:`close`.
"""

from __future__ import annotations

import socket
import threading
from typing import Literal

Mode = Literal["pass", "refuse", "hang", "throttle"]
THROTTLED = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\n"
             b"x-amzn-query-error: ThrottlingException;Sender\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")
THROTTLED_BODY = b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}'


class FaultProxy:
    def __init__(self, upstream_port: int, mode: Mode = "pass") -> None:
        self.upstream_port = upstream_port
        self.requests = 0  # connections that reached the proxy while it listened
        self.held: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.port = 0
        self.mode: Mode = "pass"
        self.set(mode)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, mode: Mode) -> FaultProxy:
        """Change the mode; ``refuse`` closes the port, any other opens it again (the same port)."""
        self.mode = mode
        if mode == "refuse":
            self._stop_listening()
        elif self.listener is None:
            self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
            self.port = self.listener.getsockname()[1]
            threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
        return self

    def close(self) -> None:
        self._stop_listening()
        with self.lock:
            for held in self.held:
                held.close()
            self.held.clear()

    def _stop_listening(self) -> None:
        if self.listener is not None:
            try:  # wakes the thread blocked in accept(): close() alone leaves the port listening until then
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed
                return
            with self.lock:
                if self.mode == "refuse":  # accepted while the port was closing
                    client.close()
                    continue
                self.requests += 1
                if self.mode == "hang":
                    self.held.append(client)  # read nothing, answer nothing: the caller's timeout decides
                    continue
            target = self._throttle if self.mode == "throttle" else self._pipe
            threading.Thread(target=target, args=(client,), daemon=True).start()

    @staticmethod
    def _throttle(client: socket.socket) -> None:
        with client:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                chunk = client.recv(65536)
                if not chunk:
                    return
                body += chunk
            client.sendall(THROTTLED % (len(THROTTLED_BODY), THROTTLED_BODY))

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return

        def forward(source: socket.socket, sink: socket.socket) -> None:
            try:
                while chunk := source.recv(65536):
                    sink.sendall(chunk)
            except OSError:
                pass
            finally:
                for end in (source, sink):
                    try:
                        end.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=forward, args=(upstream, client), daemon=True).start()
        forward(client, upstream)
        client.close()
        upstream.close()
