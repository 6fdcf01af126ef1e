"""How the runtime package's own answers appear in an app's OpenAPI schema.

Every refusal it makes (a body the guard refuses, a missing token, a dependency that is down)
is ``{"detail": "<text>"}``, like FastAPI's ``HTTPException``; these are the ``responses=``
entries that document them::

    @router.get("/orders/{id}", dependencies=[Depends(current_user)], responses=AUTH_RESPONSES)

Plain data and one type: free on the cold start (pydantic is loaded with FastAPI).
"""

from __future__ import annotations

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
