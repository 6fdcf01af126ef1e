"""What a cold start imports: in lazy mode only what a request may need; in eager mode everything.

Each case is a fresh interpreter laid out like a Lambda execution environment (``LAMBDA_TASK_ROOT``,
the function name) with every capability configured: tasks, the cache, tokens verified in the
function, settings and secrets, X-Ray, Powertools. The AWS endpoints point at a closed port, so
eager mode's clients fail fast and are retried on first use, as on Lambda when a service is down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi_lambda import constants

ROOT = Path(__file__).parents[2]
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once

EVERY_CAPABILITY = {
    constants.TASK_QUEUE_URL_VARIABLE: f"{CLOSED}/123456789012/tasks", constants.TASK_TABLE_VARIABLE: "tasks",
    constants.CACHE_HOST_VARIABLE: "127.0.0.1", constants.CACHE_PORT_VARIABLE: "9",
    constants.CACHE_SECRET_VARIABLE: "cache-token",
    constants.AUTH_ISSUER_VARIABLE: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test",
    constants.AUTH_CLIENT_IDS_VARIABLE: "client", constants.AUTH_VERIFY_VARIABLE: "true",
    constants.AUTH_JWKS_URL_VARIABLE: f"{CLOSED}/jwks.json",
    constants.CONFIG_PATH_VARIABLE: "/fastapi-lambda/test/", constants.SECRETS_VARIABLE: '{"partner_api_key": "p"}',
    constants.TRACING_VARIABLE: "xray", "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
    constants.SERVICE_NAME_VARIABLE: "fastapi-test", constants.METRICS_NAMESPACE_VARIABLE: "FastApiLambda",
}

#: Packages and modules a capability brings: none may load at init in lazy mode, all must in eager mode.
CAPABILITY_MODULES = (
    "aws_lambda_powertools",  # Logger, Metrics, Tracer
    "boto3", "botocore",  # the queue, the table, parameters and secrets, the warmup fan-out
    "aws_xray_sdk",
    "redis",  # the cache
    "jwt", "cryptography",  # tokens verified in the function
    "pydantic_settings",  # the service's settings
    "fastapi_lambda.tasks", "fastapi_lambda.cache", "fastapi_lambda.parameters",
    "service.tasks", "service.items", "service.parameters",  # the capabilities' routes
)

INIT = """import json, sys
import service.handler
from tests.app.conftest import load_event
loaded = {name: name in sys.modules for name in json.loads(sys.argv[1])}
from fastapi.openapi.models import OpenAPI
result = {"loaded": loaded, "openapi_models_built": OpenAPI.__pydantic_complete__, "pydantic_v1": "pydantic.v1" in sys.modules}
response = service.handler.handler(load_event("http_api_v2"), None)  # GET /health
result["after_get"] = {name: name in sys.modules for name in json.loads(sys.argv[1])}
result["status"] = response["statusCode"]
print(json.dumps(result))
"""


def cold_start(mode: str, capabilities: dict[str, str] = EVERY_CAPABILITY) -> dict:
    """Import the handler in a fresh Lambda-like process with ``capabilities`` configured, then GET /health."""
    env = {"PATH": "", "PYTHONPATH": f"{ROOT / 'lambda_src'}:{ROOT}", "LAMBDA_TASK_ROOT": str(ROOT / "lambda_src"),
           "AWS_LAMBDA_FUNCTION_NAME": "fastapi-test", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_ENDPOINT_URL": CLOSED,
           "AWS_MAX_ATTEMPTS": "1", "PYTHONDONTWRITEBYTECODE": "1", constants.IMPORT_MODE_VARIABLE: mode,
           **capabilities}
    done = subprocess.run([sys.executable, "-s", "-c", INIT, json.dumps(CAPABILITY_MODULES)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def lazy() -> dict:
    return cold_start("lazy")


def test_lazy_init_imports_no_capability(lazy):
    assert [name for name, loaded in lazy["loaded"].items() if loaded] == []


def test_a_request_that_needs_no_capability_loads_none(lazy):
    assert lazy["status"] == 200
    assert [name for name, loaded in lazy["after_get"].items() if loaded] == []


def test_lazy_init_defers_fastapis_openapi_models_and_pydantic_v1(lazy):
    assert lazy["openapi_models_built"] is False
    assert lazy["pydantic_v1"] is False


def test_eager_init_imports_every_configured_capability():
    eager = cold_start("eager")

    assert [name for name, loaded in eager["loaded"].items() if not loaded] == []
    assert eager["openapi_models_built"] is True
    assert eager["status"] == 200


def test_eager_init_imports_no_capability_that_is_off():
    """Behind the gateway's authorizer (tokens not verified here) and without a cache, as in staging without
    its cache: PyJWT, cryptography and redis need not even be shipped, so init must not import them."""
    off = {constants.AUTH_VERIFY_VARIABLE: "false"}
    eager = cold_start("eager", {name: value for name, value in {**EVERY_CAPABILITY, **off}.items()
                                 if not name.startswith("CACHE_")})

    assert sorted(name for name, loaded in eager["loaded"].items() if not loaded) == ["cryptography", "jwt", "redis"]
    assert eager["status"] == 200
