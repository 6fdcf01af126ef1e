"""Routers imported by their first request: a capability's routes cost the cold start nothing until used.

::

    include_later(app, "service.items:router", "/items")

puts one placeholder in the app's routes for every path under ``/items``. The first request
under it imports ``service.items`` and includes its ``router`` as ``app.include_router`` would
(the app's dependencies, overrides and exception handlers apply), in the placeholder's place:
later requests go straight to those routes. Building the OpenAPI schema loads every deferred
router first, and so does eager mode at init (``lifecycle.prepare``). A route of the router
outside the prefixes is refused when it loads: no request could have reached it.

What it saves is the import of the module (and what it imports: a capability's client
library, pydantic models built at import) and FastAPI's work on each route (~1 ms).
"""

from __future__ import annotations

import importlib
from typing import Any

from starlette.routing import BaseRoute, Match, NoMatchFound

#: Where :meth:`DeferredRouter.matches` leaves the route it matched, for its ``handle``.
SCOPE_KEY = "fastapi_lambda.deferred_route"


class DeferredRouter(BaseRoute):
    """A placeholder for the routes of ``reference`` (``package.module:router``) under ``prefixes``."""

    def __init__(self, app: Any, reference: str, prefixes: tuple[str, ...], options: dict[str, Any]) -> None:
        self.app, self.reference, self.prefixes, self.options = app, reference, prefixes, options
        self.routes: list[BaseRoute] | None = None

    def __repr__(self) -> str:
        return f"DeferredRouter({self.reference!r}, prefixes={self.prefixes!r}, loaded={self.routes is not None})"

    def covers(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.prefixes)

    def load(self) -> list[BaseRoute]:
        """Import the router and include it in the app, in this placeholder's place (once)."""
        if self.routes is not None:
            return self.routes
        module, _, attribute = self.reference.partition(":")
        router = getattr(importlib.import_module(module), attribute)
        routes = self.app.router.routes
        count = len(routes)
        self.app.include_router(router, **self.options)
        added = routes[count:]
        del routes[count:]
        outside = sorted(path for path in _paths(added) if not self.covers(path))
        if outside:
            raise RuntimeError(f"{self.reference} serves {', '.join(outside)}, outside the prefixes it was deferred "
                               f"under ({', '.join(self.prefixes)}): add them to include_later(..., prefixes)")
        self.routes = added
        if self in routes:
            position = routes.index(self)
            routes[position:position + 1] = added
        return added

    def matches(self, scope: Any) -> tuple[Match, dict[str, Any]]:
        if scope.get("type") not in ("http", "websocket") or not self.covers(_route_path(scope)):
            return Match.NONE, {}
        partial: tuple[Match, dict[str, Any]] = (Match.NONE, {})
        for route in self.load():
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return match, {**child_scope, SCOPE_KEY: route}
            if match is Match.PARTIAL and partial[0] is Match.NONE:
                partial = (match, {**child_scope, SCOPE_KEY: route})
        return partial

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        await scope.pop(SCOPE_KEY).handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        for route in self.load():
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                continue
        raise NoMatchFound(name, path_params)


def _paths(routes: list[BaseRoute]) -> set[str]:
    """The path templates ``routes`` serve (FastAPI 0.16x includes a router as one route that holds them)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI: include_router added the routes themselves
        return {getattr(route, "path", "") for route in routes}
    return {context.path or "" for context in iter_route_contexts(routes)}  # None: no path, as above


def _route_path(scope: Any) -> str:
    """The path the app's routes see (without the ``root_path`` it is mounted under), as Starlette's router does."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def include_later(app: Any, reference: str, *prefixes: str, **options: Any) -> DeferredRouter:
    """Include the router ``reference`` (``package.module:attribute``) in ``app`` on the first request under one
    of ``prefixes`` (``"/items"``: ``/items`` and ``/items/...``); ``options`` are ``include_router``'s."""
    module, _, attribute = reference.partition(":")
    if not module or not attribute:
        raise ValueError(f"include_later: {reference!r} must look like 'package.module:router'")
    if not prefixes or any(not p.startswith("/") or p.endswith("/") for p in prefixes):
        raise ValueError(f"include_later({reference!r}): give the path prefixes its routes are under, each starting "
                         f"with '/' and not ending with one (e.g. '/items'); got {prefixes!r}")
    placeholder = DeferredRouter(app, reference, prefixes, options)
    app.router.routes.append(placeholder)
    if not getattr(app.openapi, "loads_deferred_routers", False):
        build = app.openapi

        def openapi() -> dict[str, Any]:
            load_all(app)  # FastAPI documents the routes it has
            return build()

        openapi.loads_deferred_routers = True  # type: ignore[attr-defined]
        openapi.changes = getattr(build, "changes", {})  # type: ignore[attr-defined]  # what openapi.extend added
        app.openapi = openapi
    return placeholder


def load_all(app: Any) -> None:
    """Load every deferred router of ``app`` now (eager mode, the OpenAPI schema, tests listing routes)."""
    routes: list[object] = list(getattr(getattr(app, "router", None), "routes", ()))
    for route in routes:
        if isinstance(route, DeferredRouter):
            route.load()
