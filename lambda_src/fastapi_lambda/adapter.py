"""Mangum, cheaper per request: the same events in, the same responses out (tests compare the two).

- Mangum's handlers build an event's ASGI ``scope`` (headers, query, cookies: about 13 µs) on every
  access and read it twice per request: here it is built once.
- Mangum's request cycle keeps the request in an ``asyncio.Queue`` made per request (with its own
  event and three deques) and sends it through the queue's coroutines: here it is one attribute,
  and only an app that waits for the disconnect before it answered gets a future to wait on.
- Lifespan is off (Mangum would otherwise run startup and shutdown on every invocation), so
  :class:`Adapter` calls the cycle directly.

Together about a tenth of a warm ``GET /``. Loaded with the first app a handler serves: a worker
without a web app never imports Mangum.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from io import BytesIO
from typing import Any, cast

from mangum import Mangum
from mangum.handlers import ALB, APIGateway, HTTPGateway
from mangum.protocols.http import HTTPCycle, HTTPCycleState
from mangum.types import ASGI, LambdaContext, LambdaEvent, LambdaHandler, Message, Scope

_DISCONNECT: Message = {"type": "http.disconnect"}
_logger = logging.getLogger("mangum.http")  # Mangum's own: its level and handlers apply


def _scope_once(handler_class: type[object]) -> type[LambdaHandler]:
    """A Mangum handler class (``ALB``, ``HTTPGateway``, ``APIGateway``) whose ``scope`` is built once per request."""
    built: property = inspect.getattr_static(handler_class, "scope")
    if built.fget is None:
        raise TypeError(f"{handler_class.__name__}.scope is not a property")
    once = functools.cached_property(built.fget)
    return cast("type[LambdaHandler]", type(handler_class.__name__, (handler_class,), {"scope": once}))


@functools.cache
def handlers() -> list[type[LambdaHandler]]:
    """Tried before Mangum's own (same inference, same output)."""
    return [_scope_once(cls) for cls in (ALB, HTTPGateway, APIGateway)]


class RequestCycle(HTTPCycle):
    """Mangum's HTTP cycle without its per-request queue: the request once, then the disconnect.

    ``receive`` answers the request, then, once the response is complete, ``http.disconnect``;
    an app that asks again before that (to watch for the client leaving) waits for it, as with
    Mangum. ``send`` and ``run`` (errors become a 500) are Mangum's.
    """

    def __init__(self, scope: Scope, body: bytes) -> None:  # no super(): it would make the queue
        self.scope = scope
        self.buffer = BytesIO()
        self.state = HTTPCycleState.REQUEST
        self.logger = _logger
        self.request: Message | None = {"type": "http.request", "body": body, "more_body": False}
        self.disconnected: asyncio.Future[None] | None = None

    async def receive(self) -> Message:
        request, self.request = self.request, None
        if request is not None:
            return request
        if self.state is not HTTPCycleState.COMPLETE:
            if self.disconnected is None:
                self.disconnected = asyncio.get_running_loop().create_future()
            await asyncio.shield(self.disconnected)
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        if self.state is HTTPCycleState.RESPONSE and message["type"] == "http.response.body" \
                and not message.get("more_body", False):
            self.buffer.write(message.get("body", b""))
            self.body = self.buffer.getvalue()
            self.buffer.close()
            self.state = HTTPCycleState.COMPLETE
            if self.disconnected is not None and not self.disconnected.done():
                self.disconnected.set_result(None)
            self.logger.info("%s %s %s", self.scope["method"], self.scope["path"], self.status)
            return
        await super().send(message)  # the start, a chunk, or Mangum's error for a message out of order


class Adapter(Mangum):
    """``Mangum(app, lifespan="off")`` with the handlers and the cycle above."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        # Mangum's ASGI protocol names its parameters; an ASGI app is called positionally, so any callable fits.
        super().__init__(cast(ASGI, app), lifespan="off", custom_handlers=handlers())

    def __call__(self, event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
        handler = self.infer(event, context)
        return handler(RequestCycle(handler.scope, handler.body)(self.app))
