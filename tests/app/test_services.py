"""A service mounted on a path prefix (the billing service on /billing), through our handler and Mangum.

The gateway passes the whole path; ``FASTAPI_LAMBDA_ROOT_PATH`` (set by the construct that
mounts the service) makes it the app's ``root_path``: its routes, ``/docs`` and
``/openapi.json`` answer under the prefix, and the documentation points at the prefix too.
"""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi_lambda import lambda_handler
from fastapi_lambda.constants import APP_VARIABLE, ROOT_PATH_VARIABLE
from fastapi_lambda.edge import root_path_of

from tests.app.conftest import http_answer, http_event, jwt_authorizer

KINDS = ("rest_api_v1", "http_api_v2")


def billing_handler(monkeypatch, root_path: str):
    """The handler Lambda builds from the function's environment (the generic entry point, app=)."""
    monkeypatch.setenv(ROOT_PATH_VARIABLE, root_path)
    monkeypatch.setenv(APP_VARIABLE, "service.billing:app")
    from fastapi_lambda.entry import build_handler  # its import builds the handler the environment names

    return build_handler()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("root", ["/billing", "/v1/billing"], ids=["prefix", "domain-base-path"])
def test_the_service_answers_under_its_prefix(monkeypatch, kind, root, lambda_context):
    handler = billing_handler(monkeypatch, root)

    status, _, body = http_answer(handler(http_event("GET", f"{root}/health", kind=kind), lambda_context))
    assert (status, body) == (200, {"status": "ok", "service": "billing"})

    signed_in = http_event("GET", f"{root}/invoices/inv-1002", kind=kind, authorizer=jwt_authorizer())
    status, _, body = http_answer(handler(signed_in, lambda_context))
    assert status == 200 and body["customer"] == "globex"

    status, _, body = http_answer(handler(http_event("GET", f"{root}/invoices/nope", kind=kind,
                                                     authorizer=jwt_authorizer()), lambda_context))
    assert status == 404


@pytest.mark.parametrize("kind", KINDS)
def test_docs_and_the_schema_work_under_the_prefix(monkeypatch, kind, lambda_context):
    handler = billing_handler(monkeypatch, "/billing")

    docs = handler(http_event("GET", "/billing/docs", kind=kind), lambda_context)
    assert docs["statusCode"] == 200 and "'/billing/openapi.json'" in docs["body"]

    status, _, schema = http_answer(handler(http_event("GET", "/billing/openapi.json", kind=kind), lambda_context))
    assert status == 200 and schema["info"]["title"] == "Billing"
    assert schema["servers"] == [{"url": "/billing"}]  # so "Try it out" calls /billing/invoices
    assert {"/health", "/invoices", "/invoices/{invoice_id}"} <= set(schema["paths"])


def test_paths_outside_the_prefix_are_not_the_services(monkeypatch, lambda_context):
    handler = billing_handler(monkeypatch, "/billing")

    # Starlette routes a path outside root_path as it is: a direct invocation with the app's own paths works.
    status, _, body = http_answer(handler(http_event("GET", "/health"), lambda_context))
    assert (status, body["service"]) == (200, "billing")
    status, _, _ = http_answer(handler(http_event("GET", "/billingx/health"), lambda_context))
    assert status == 404


def test_without_a_root_path_the_app_is_served_at_the_root(monkeypatch, lambda_context):
    monkeypatch.delenv(ROOT_PATH_VARIABLE, raising=False)
    from service.billing import app

    handler = lambda_handler(app)
    assert http_answer(handler(http_event("GET", "/health"), lambda_context))[0] == 200
    assert http_answer(handler(http_event("GET", "/billing/health"), lambda_context))[0] == 404


@pytest.mark.parametrize(("value", "expected"), [
    ("/billing", "/billing"), ("billing/", "/billing"), ("//v1//billing/", "/v1/billing"), ("/", ""), ("", ""),
    (None, "")])
def test_root_path_spellings(value, expected):
    assert root_path_of(value) == expected


def test_the_prefix_itself_is_the_apps_root(monkeypatch, lambda_context):
    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"at": "root"}

    monkeypatch.setenv(ROOT_PATH_VARIABLE, "/billing")
    handler = lambda_handler(app)
    for kind in KINDS:  # the gateway's "ANY /billing" route: no redirect, the app's "/" answers
        assert http_answer(handler(http_event("GET", "/billing", kind=kind), lambda_context))[2] == {"at": "root"}


def test_the_main_app_still_serves_its_own_routes_with_a_domain_base_path(monkeypatch, lambda_context):
    monkeypatch.setenv(ROOT_PATH_VARIABLE, "/v1")
    from service.main import create_app

    handler = lambda_handler(create_app(environment="test"))
    status, _, body = http_answer(handler(http_event("GET", "/v1/health"), lambda_context))
    assert (status, body) == (200, {"status": "ok"})
    assert json.loads(handler(http_event("GET", "/v1/"), lambda_context)["body"])["environment"] == "test"


def test_a_fastapi_app_with_its_own_prefix_in_routes_is_not_stripped_twice(monkeypatch, lambda_context):
    app = FastAPI()

    @app.get("/billing/summary")
    async def summary() -> dict[str, bool]:
        return {"ok": True}

    monkeypatch.setenv(ROOT_PATH_VARIABLE, "/billing")
    handler = lambda_handler(app)
    assert http_answer(handler(http_event("GET", "/billing/billing/summary"), lambda_context))[0] == 200
