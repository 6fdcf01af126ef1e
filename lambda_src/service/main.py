"""FastAPI application factory and routes."""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi_lambda.auth import AUTH_RESPONSES, current_user
from fastapi_lambda.deferred import include_later
from fastapi_lambda.openapi import RETRY_AFTER, detail_response, extend, plain_route
from starlette.requests import Request

# FastAPI's built-in OpenTelemetry instrumentation is switched off: Lambda traces
# through X-Ray, and each enabled signal costs time on every request.
TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


async def root(request: Request) -> JSONResponse:
    """Greets the caller and names the environment it reached."""
    return JSONResponse({"message": "Hello from FastAPI on AWS Lambda", "environment": request.app.state.environment})


async def health(request: Request) -> JSONResponse:
    """Liveness probe for load balancers, uptime checks and the warmup rule."""
    return JSONResponse({"status": "ok"})


async def me(request: Request) -> JSONResponse:
    """Who the token says the caller is: 401 without a valid one."""
    user = await current_user(request)
    return JSONResponse({"sub": user.sub, "username": user.username, "scopes": sorted(user.scopes),
                         "client_id": user.client_id, "token_use": user.token_use})


async def config(request: Request) -> JSONResponse:
    """The non-secret settings (never a secret): 401 without a signed-in caller, 503 if unreadable."""
    await current_user(request)
    from service.parameters import settings  # pydantic-settings loads with the first call

    return JSONResponse((await settings()).model_dump(mode="json"))


async def partner_status(request: Request) -> JSONResponse:
    """Whether the partner integration's secret can be read: 503 if not. Never the secret itself."""
    await current_user(request)
    from service.parameters import secrets

    key = (await secrets()).partner_api_key.get_secret_value()
    return JSONResponse({"partner": "configured" if key else "empty"})


async def openapi_schema(request: Request) -> JSONResponse:
    """The OpenAPI schema, for signed-in callers: like every route but the public ones."""
    await current_user(request)
    return JSONResponse(request.app.openapi())


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(*names: str, nullable: tuple[str, ...] = ()) -> dict:
    return {name: {"type": ["string", "null"] if name in nullable else "string"} for name in names}


def document_plain_routes(schema: dict) -> None:
    """The plain Starlette routes in the OpenAPI schema: FastAPI documents only its own routes."""
    from service.parameters import ServiceSettings  # pydantic-settings: loaded when the schema is built, not at import

    unavailable = {503: detail_response("A setting or secret this route needs cannot be read, or tokens cannot "
                                        "be checked right now", RETRY_AFTER)}
    for change in (
        plain_route("/", "Greets the caller", {200: _json("A greeting", {
            "type": "object", "required": ["message", "environment"], "properties": _text("message", "environment")})},
            secured=False),
        plain_route("/health", "Liveness", {200: _json("Alive", {
            "type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}})},
            secured=False),
        plain_route("/me", "Who the token says the caller is", {200: _json("The caller", {
            "type": "object", "required": ["sub", "username", "scopes", "client_id", "token_use"],
            "properties": {**_text("sub", "token_use"), **_text("username", "client_id", nullable=("username", "client_id")),
                           "scopes": {"type": "array", "items": {"type": "string"}}}}), **AUTH_RESPONSES}),
        plain_route("/config", "The non-secret settings", {
            200: _json("The settings", ServiceSettings.model_json_schema()), **AUTH_RESPONSES, **unavailable}),
        plain_route("/partner/status", "Whether the partner integration's secret can be read", {
            200: _json("Readable", {"type": "object", "required": ["partner"],
                                    "properties": {"partner": {"type": "string", "enum": ["configured", "empty"]}}}),
            **AUTH_RESPONSES, **unavailable}),
    ):
        change(schema)


def document_task_requests(schema: dict) -> None:
    """``POST /tasks``: one request body per registered task type (the registry loads with the schema)."""
    from service.tasks import document_task_requests as document

    document(schema)


def create_app(*, environment: str | None = None) -> FastAPI:
    """Build the application.

    ``environment`` defaults to the ``APP_ENVIRONMENT`` variable the stack sets. The schema is
    served at ``/openapi.json`` to signed-in callers only, and there are no interactive docs pages:
    the app checks the caller on every route the gateway does not declare public.
    """
    app = FastAPI(title="FastAPI on AWS Lambda", telemetry=TELEMETRY_OFF, openapi_url=None, docs_url=None,
                  redoc_url=None)
    app.state.environment = environment or os.environ.get("APP_ENVIRONMENT", "local")
    # Static endpoints take no parameters and need no validation, so they are plain
    # Starlette routes: that skips FastAPI's dependency and serialisation pipeline
    # (about 40% of a warm request); /me, /config and /partner/status await their
    # dependencies themselves. Routes with inputs use the usual decorators.
    app.add_route("/", root, methods=["GET"])
    app.add_route("/health", health, methods=["GET"])
    app.add_route("/me", me, methods=["GET"])
    app.add_route("/config", config, methods=["GET"])
    app.add_route("/partner/status", partner_status, methods=["GET"])
    app.add_route("/openapi.json", openapi_schema, methods=["GET"], include_in_schema=False)
    # Each capability's routes are imported by their first request (at init in eager mode): a
    # request that needs none pays for none (the queue's, the cache's and S3's modules, their models).
    include_later(app, "service.tasks:router", "/tasks")
    include_later(app, "service.items:router", "/items")
    include_later(app, "service.uploads:router", "/uploads")
    extend(app, "plain routes", document_plain_routes)
    extend(app, "task requests", document_task_requests)
    return app
