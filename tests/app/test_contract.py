"""The OpenAPI schema is a contract: schemathesis generates requests from it (valid ones and ones
that break it) and checks every answer: no server error, a documented status with a body and
headers that match the schema, refusals of what the schema forbids, 401 without the token.

Three ways in, for this repository's app and for the consumer example: the ASGI app as any
server runs it (behind ``InputGuard``, tokens verified in the app), and the Lambda handler
through API Gateway events, HTTP API payload 2.0 and REST, with the gateway's authorizer
played by :class:`tests.app.lambda_asgi.LambdaAsAsgi` (a valid token's claims in the event).
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path
from typing import cast

import pytest
import schemathesis
from fastapi_lambda.constants import AUTH_VERIFY_VARIABLE, TASKS_WRITE_SCOPE
from fastapi_lambda.guard import InputGuard, protect
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from service.handler import handler as service_handler
from service.main import create_app
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.app.conftest import forget_settings, jwt_authorizer, new_parameters, new_task_infra
from tests.app.lambda_asgi import LambdaAsAsgi

sys.path.append(str(Path(__file__).parents[2] / "examples" / "consumer" / "src"))
from orders import handler as orders_handler  # noqa: E402  (the consumer's own package, on its own path)

SERVERS = ("asgi", "http_api_v2", "rest_api_v1")
#: Per operation and server: enough to find what a hand-written test misses, few enough for a fast suite.
EXAMPLES = 10
#: What each run generated and what it answered, by server: the counts the suite reports.
SEEN: collections.Counter[str] = collections.Counter()


class Target:
    """The ASGI app schemathesis calls, set by each test: one of the ways in."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "each test sets TARGET.app first"
        await self.app(scope, receive, send)


TARGET = Target()


def schema_of(app) -> schemathesis.BaseSchema:
    protect(app)  # what lambda_handler and InputGuard do to it: the guard's answers are in the schema
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = TARGET  # reached in-process, never over the network
    schema.config.generation.update(max_examples=EXAMPLES)
    return schema


service_schema = schema_of(create_app(environment="test"))
consumer_schema = schema_of(orders_handler.app)


@pytest.fixture(scope="module")
def dependencies(aws, moto_endpoint):
    """The queue, table, settings and secret on moto, for the whole module (a 503 is a server error to
    schemathesis: the fault tests are where dependencies fail)."""
    with pytest.MonkeyPatch.context() as patch:
        infra = new_task_infra(aws, patch.setenv)
        patch.setenv("UPLOAD_BUCKET", infra.bucket)  # POST /uploads signs URLs for it
        new_parameters(moto_endpoint, patch.setenv)
        patch.setenv("ITEMS_SOURCE_DELAY_MS", "0")
        yield
    forget_settings()


@pytest.fixture
def serve(identity, lambda_context, dependencies, monkeypatch):
    """The app behind each way in; the token's claims when the gateway verified it."""
    for name, value in identity.settings.items():
        monkeypatch.setenv(name, value)
    claims = jwt_authorizer(TASKS_WRITE_SCOPE, iss=identity.settings["AUTH_ISSUER"], client_id=identity.client_id)

    def app_for(name: str, server: str) -> None:
        if server == "asgi":
            monkeypatch.setenv(AUTH_VERIFY_VARIABLE, "true")  # no gateway in front: the app verifies the token
            TARGET.app = InputGuard(create_app(environment="test") if name == "service" else orders_handler.app)
        else:
            handler = service_handler if name == "service" else orders_handler.handler
            TARGET.app = LambdaAsAsgi(handler, server, lambda_context,
                                      authorizer=lambda token: claims if token == identity.token else None)

    return app_for


@pytest.fixture(scope="session")
def token(identity):
    from cdk_app.local.identity import moto_token_with_scopes

    identity.token = moto_token_with_scopes(identity.access, [TASKS_WRITE_SCOPE])
    return identity.token


# Hypothesis's HealthCheckMeta.__iter__ is unannotated: the members' type is lost.
HYPOTHESIS = settings(suppress_health_check=cast("list[HealthCheck]", list(HealthCheck)))


@pytest.mark.parametrize("server", SERVERS)
@service_schema.parametrize()
@HYPOTHESIS
def test_the_service_keeps_its_contract(case, server, serve, token):
    serve("service", server)
    response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"})
    SEEN[f"service {server}"] += 1
    SEEN[f"service {server} {response.status_code // 100}xx"] += 1


@pytest.mark.parametrize("server", SERVERS)
@consumer_schema.parametrize()
@HYPOTHESIS
def test_the_consumer_example_keeps_its_contract(case, server, serve):
    serve("consumer", server)
    # Its models are pydantic's lax defaults ("2" and true pass as a quantity, 2.0 too): how strictly an app
    # validates is its authors' choice. What the runtime owes every app is checked: no 5xx, answers as documented.
    response = case.call_and_validate(excluded_checks=[negative_data_rejection, positive_data_acceptance])
    SEEN[f"consumer {server}"] += 1
    SEEN[f"consumer {server} {response.status_code // 100}xx"] += 1


def test_report_what_was_generated(capsys):
    """Last in this module: one line with the number of generated cases and what they got."""
    with capsys.disabled():
        print(f"\nschemathesis cases: {sum(v for k, v in SEEN.items() if k.count(' ') == 1)}; "
              + ", ".join(f"{k}: {v}" for k, v in sorted(SEEN.items())))
    assert not any(key.endswith("5xx") for key in SEEN)
