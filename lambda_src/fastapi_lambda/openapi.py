"""How the runtime package's own answers appear in an app's OpenAPI schema.

Every refusal it makes (a body the guard refuses, a missing token, a dependency that is down)
is ``{"detail": "<text>"}``, like FastAPI's ``HTTPException``; these are the ``responses=``
entries that document them::

    @router.get("/orders/{id}", dependencies=[Depends(current_user)], responses=AUTH_RESPONSES)

:func:`extend` adds to the schema what FastAPI cannot see (the guard's answers, plain Starlette
routes). Plain data and one type: free on the cold start (pydantic is loaded with FastAPI).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, Strict


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: An integer as JSON Schema (so the OpenAPI schema) means one: ``4`` and ``4.0``, never ``"4"`` or
#: ``true``. pydantic's lax mode takes those too; its strict mode refuses ``4.0``.
JsonInt = Annotated[int, BeforeValidator(_integral), Strict()]

#: ``{"detail": "<text>"}``: the body of every refusal.
DETAIL_SCHEMA: dict[str, Any] = {"type": "object", "title": "Detail", "required": ["detail"],
                                 "properties": {"detail": {"type": "string", "title": "Detail"}}}


def detail_response(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A ``responses=`` entry: ``{"detail": ...}`` as JSON, with ``headers`` (name -> what it says)."""
    response: dict[str, Any] = {"description": description,
                                "content": {"application/json": {"schema": DETAIL_SCHEMA}}}
    if headers:
        response["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                               for name, text in headers.items()}
    return response


RETRY_AFTER = {"Retry-After": "Seconds to wait before trying again"}


def extend(app: Any, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Have ``change(schema)`` run on the app's OpenAPI schema each time FastAPI builds it (once per
    set of routes), under ``name``: extending twice under one name changes nothing."""
    openapi = app.openapi
    changes = getattr(openapi, "changes", {})
    if name in changes:
        return
    extended_schemas: list[int] = []

    def extended() -> dict[str, Any]:
        schema = openapi()
        if id(schema) not in extended_schemas:  # new: FastAPI built it (again)
            for each in extended.changes.values():  # type: ignore[attr-defined]
                each(schema)
            extended_schemas[:] = [id(schema)]
        return schema

    extended.changes = {**changes, name: change}  # type: ignore[attr-defined]
    app.openapi = extended


def plain_route(path: str, summary: str, responses: dict[Any, Any], *, method: str = "get",
                secured: bool = True) -> Callable[[dict[str, Any]], None]:
    """A :func:`extend` change that documents a plain Starlette route (FastAPI documents only its own)."""

    def document(schema: dict[str, Any]) -> None:
        operation: dict[str, Any] = {"summary": summary, "operationId": f"{method}_{path.strip('/').replace('/', '_') or 'root'}",
                                     "responses": {str(status): response for status, response in responses.items()}}
        if secured:
            operation["security"] = [{"bearerAuth": []}]
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes.setdefault("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
        schema.setdefault("paths", {}).setdefault(path, {})[method] = operation

    return document
