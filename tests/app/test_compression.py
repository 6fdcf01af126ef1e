"""``fastapi_lambda.edge.Compression`` answers exactly as Starlette's ``GZipMiddleware`` does, loading it only
for the callers that accept gzip: the same messages (status, headers, ``Vary``, body) for every kind of answer."""

from __future__ import annotations

import asyncio
import gzip
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest
from fastapi_lambda import edge, lifecycle
from starlette.middleware.gzip import GZipMiddleware

MINIMUM = 1000
Message = dict[str, Any]

#: (status, headers, body chunks) per path: what the raw ASGI app below answers.
ANSWERS: dict[str, tuple[int, list[tuple[bytes, bytes]], list[bytes]]] = {
    "/small": (200, [(b"content-type", b"application/json")], [b'{"ok": true}']),
    "/large": (200, [(b"content-type", b"application/json")], [b'{"rows": "' + b"x" * 4000 + b'"}']),
    "/exact": (200, [(b"content-type", b"text/plain; charset=utf-8")], [b"y" * MINIMUM]),
    "/png": (200, [(b"content-type", b"image/png")], [b"\x89PNG" + b"z" * 4000]),
    "/grpc": (200, [(b"content-type", b"application/grpc+proto")], [b"g" * 4000]),
    "/encoded": (200, [(b"content-type", b"text/plain"), (b"content-encoding", b"br")], [b"b" * 4000]),
    "/partial": (206, [(b"content-type", b"text/plain")], [b"p" * 4000]),
    "/stream": (200, [(b"content-type", b"text/plain")], [b"s" * 10, b"t" * 10, b""]),
    "/varies": (200, [(b"content-type", b"text/plain"), (b"vary", b"Origin")], [b"v" * 4000]),
    "/no-type": (200, [], [b"n" * 4000]),
    "/empty": (204, [], [b""]),
}


async def raw_app(scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
                  send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
    status, headers, chunks = ANSWERS[scope["path"]]
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    for number, chunk in enumerate(chunks):
        await send({"type": "http.response.body", "body": chunk, "more_body": number < len(chunks) - 1})


def run(app: Any, path: str, accept: bytes | None) -> list[Message]:
    sent: list[Message] = []
    headers = [(b"host", b"example.com")] + ([(b"accept-encoding", accept)] if accept is not None else [])
    scope = {"type": "http", "method": "GET", "path": path, "headers": headers, "query_string": b""}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append({**message, "headers": list(message.get("headers", []))} if "headers" in message else message)

    loop = asyncio.new_event_loop()  # not asyncio.run: it leaves no current loop, which Mangum's later calls need
    try:
        loop.run_until_complete(app(scope, receive, send))
    finally:
        loop.close()
    return sent


def decoded(messages: list[Message]) -> list[Message]:
    """The messages with a gzip body stream decompressed (gzip output differs in its header's timestamp only)."""
    start, *bodies = messages
    if (b"content-encoding", b"gzip") not in start["headers"]:
        return messages
    return [start, {"type": "http.response.body", "body": gzip.decompress(b"".join(m["body"] for m in bodies))}]


@pytest.mark.parametrize("accept", [None, b"identity", b"gzip", b"gzip, deflate, br", b"br;q=1.0, gzip;q=0.8", b""])
@pytest.mark.parametrize("path", sorted(ANSWERS))
def test_the_same_answers_as_starlettes_middleware(path, accept):
    ours = run(edge.Compression(raw_app, MINIMUM), path, accept)
    starlette = run(GZipMiddleware(raw_app, minimum_size=MINIMUM), path, accept)

    assert decoded(ours) == decoded(starlette)


def test_a_caller_without_gzip_gets_vary_on_what_would_have_been_compressed():
    start = run(edge.Compression(raw_app, MINIMUM), "/large", b"identity")[0]
    small = run(edge.Compression(raw_app, MINIMUM), "/small", None)[0]

    assert (b"vary", b"Accept-Encoding") in start["headers"] and (b"content-encoding", b"gzip") not in start["headers"]
    assert not any(name == b"vary" for name, _ in small["headers"])


def test_the_middleware_loads_with_the_first_gzip_caller_only():
    compression = edge.Compression(raw_app, MINIMUM)
    run(compression, "/large", b"identity")
    assert compression.gzip.value is None

    run(compression, "/large", b"gzip")
    assert isinstance(compression.gzip.value, GZipMiddleware)


def test_eager_mode_makes_the_middleware_at_init(monkeypatch):
    monkeypatch.setattr(lifecycle, "import_mode", lambda: "eager")
    compression = edge.Compression(raw_app, MINIMUM)
    lifecycle._build_everything(raw_app)  # what prepare() does at init in eager mode

    assert isinstance(compression.gzip.value, GZipMiddleware)


def test_starlettes_gzip_module_is_not_imported_to_mount_the_edge():
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name == "starlette.middleware.gzip"}
    try:
        edge.mount(raw_app, {"FASTAPI_LAMBDA_GZIP_MIN_BYTES": "1024"})
        assert "starlette.middleware.gzip" not in sys.modules
    finally:
        sys.modules.update(saved)
