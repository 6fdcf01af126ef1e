"""The Lambda handler behind an ASGI face, so HTTP test clients (schemathesis) reach it as API Gateway would.

Each request becomes the event API Gateway would send: HTTP API payload 2.0 (``http_api_v2``) or
REST (``rest_api_v1``), with a body that is not UTF-8 base64-encoded; the handler's answer becomes
the HTTP response. ``authorizer`` plays the gateway's authorizer: given the request's bearer
token, the ``requestContext.authorizer`` it would pass on, or None (then the function is on its own).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from tests.app.conftest import http_event

#: The "Lambda runtime": one thread with an event loop of its own, like the runtime's main thread.
RUNTIME = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda-runtime",
                             initializer=lambda: asyncio.set_event_loop(asyncio.new_event_loop()))


class LambdaAsAsgi:
    def __init__(self, handler: Callable[[dict, Any], dict], kind: str, context: Any,
                 authorizer: Callable[[str | None], dict | None] = lambda token: None) -> None:
        self.handler, self.kind, self.context, self.authorizer = handler, kind, context, authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # test clients start one; Lambda has none
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            return await send({"type": "lifespan.shutdown.complete"})
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        # In a thread of its own, as on Lambda: Mangum runs its own event loop, never inside a running one.
        response = await asyncio.get_running_loop().run_in_executor(RUNTIME, self.handler, self.event(scope, body),
                                                                    self.context)
        headers = {k.lower(): [v] for k, v in (response.get("headers") or {}).items()}
        headers.update({k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()})
        content = response.get("body") or ""
        content = base64.b64decode(content) if response.get("isBase64Encoded") else content.encode()
        await send({"type": "http.response.start", "status": response["statusCode"],
                    "headers": [(k.encode(), v.encode("latin-1")) for k, values in headers.items() for v in values]})
        await send({"type": "http.response.body", "body": content})

    def event(self, scope: Scope, body: bytes) -> dict:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:  # repeated headers arrive joined, as the gateway joins them
            key = name.decode("latin-1").lower()
            headers[key] = f"{headers[key]},{value.decode('latin-1')}" if key in headers else value.decode("latin-1")
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        token = headers.get("authorization", "").removeprefix("Bearer ").strip() or None
        try:
            text: str | bytes | None = body.decode() if body else None
        except UnicodeDecodeError:
            text = body
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")  # percent-encoded, as the gateway has it
        event = http_event(scope["method"], path, kind=self.kind, body=text, headers=headers,
                           query=query, authorizer=self.authorizer(token))
        if self.kind == "http_api_v2":
            event["rawQueryString"] = scope["query_string"].decode("latin-1")
        if "content-type" not in headers:
            event["headers"].pop("content-type")
            event.get("multiValueHeaders", {}).pop("content-type", None)
        return event
