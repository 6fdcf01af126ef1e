"""Fixtures for the application tests: real Lambda event payloads and a context."""

from __future__ import annotations

import copy
import json
import logging
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import settings

# Property tests (Hypothesis, schemathesis): no example database written into the checkout, no
# per-example deadline (a shared CI machine is slow at times; budgets are counted, never timed).
settings.register_profile("suite", database=None, deadline=None)
settings.load_profile("suite")

EVENTS = Path(__file__).parent / "events"
HTTP_EVENTS = ("rest_api_v1", "http_api_v2", "function_url", "alb")


def load_event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture(autouse=True)
def auth_settings(monkeypatch):
    """No AUTH_* settings from the shell (``local-token`` prints them), and each test's read afresh."""
    from fastapi_lambda import auth, constants

    for name in dir(constants):
        if name.startswith("AUTH_") and name.endswith("_VARIABLE"):
            monkeypatch.delenv(getattr(constants, name), raising=False)
    auth.settings.reset()
    auth.signing_keys.reset()
    yield
    auth.settings.reset()
    auth.signing_keys.reset()


def jwt_authorizer(*scopes: str, **claims: str) -> dict:
    """``requestContext.authorizer`` as an HTTP API JWT authorizer writes it (payload 2.0) for the
    access token it verified: every claim as text, the token's scopes also as a list."""
    claims = {"sub": "5f4e3d2c-0000-4000-8000-00000000abcd", "iss": GATEWAY_ISSUER, "client_id": GATEWAY_CLIENT_ID,
              "token_use": "access", "scope": " ".join(scopes), "auth_time": "1764291500", "iat": "1764291500",
              "exp": "1764295100", "jti": "0f1e2d3c-0000-4000-8000-000000000001",
              "username": "5f4e3d2c-0000-4000-8000-00000000abcd", **claims}
    return {"jwt": {"claims": claims, "scopes": list(scopes) or None}}


def http_event(method: str = "GET", path: str = "/", *, kind: str = "http_api_v2", body: str | bytes | None = None,
               headers: dict | None = None, query: dict | None = None, authorizer: dict | None = None) -> dict:
    """An API Gateway event as the gateway sends it: HTTP API payload 2.0 (``http_api_v2``) or REST
    (``rest_api_v1``); a JSON content type unless ``headers`` say otherwise; bytes go base64-encoded."""
    import base64
    from urllib.parse import urlencode

    event = load_event(kind)
    headers = {"content-type": "application/json", **(headers or {})}
    if kind == "http_api_v2":
        event.update(rawPath=path, rawQueryString=urlencode(query or {}), queryStringParameters=query or None)
        event["headers"].pop("content-length")
        event["requestContext"]["http"].update(method=method, path=path)
    else:
        event.update(path=path, httpMethod=method, queryStringParameters=query or None,
                     multiValueQueryStringParameters={k: [v] for k, v in query.items()} if query else None)
        event["requestContext"].update(httpMethod=method, path=f"/api{path}")
        event["multiValueHeaders"].update({name: [value] for name, value in headers.items()})
    event["headers"].update(headers)
    event["isBase64Encoded"] = isinstance(body, bytes)
    event["body"] = base64.b64encode(body).decode() if isinstance(body, bytes) else body
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    return event


def http_answer(response: dict) -> tuple[int, dict, Any]:
    """Status, headers and JSON body (None when empty) of the handler's answer to an HTTP event."""
    import base64

    text = base64.b64decode(response["body"]) if response.get("isBase64Encoded") else response["body"]
    return response["statusCode"], response.get("headers", {}), json.loads(text) if text else None


def app_routes(app) -> set[tuple[str, str]]:
    """Every (method, path template) the app serves, FastAPI's included routers, plain routes and the routers it
    includes on their first request (loaded now) alike."""
    from fastapi.routing import iter_route_contexts
    from fastapi_lambda.deferred import load_all

    load_all(app)
    routes: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method != "HEAD":
                assert route.path is not None, route  # a route that answers a method has a path
                routes.add((method, route.path))
    return routes


GATEWAY_ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example1"
GATEWAY_CLIENT_ID = "4example5client6id7abcdefg"


def loaded_in_lazy_mode(code: str, packages: set[str], **environment: str) -> list[str]:
    """Which of ``packages`` a fresh process in lazy mode, as on Lambda, has imported once it ran ``code``."""
    import subprocess
    import sys

    root = Path(__file__).parents[2]
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {packages!r})))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root,
                            env={"PATH": "", "PYTHONPATH": f"{root / 'lambda_src'}:{root}", "IMPORT_MODE": "lazy",
                                 **environment})
    return json.loads(result.stdout)


def loaded_after_a_request(modules: set[str], **environment: str) -> list[str]:
    """Which of ``modules`` a fresh lazy-mode process has imported after importing the handler and one ``GET /``."""
    code = ("import service.handler as h; from tests.app.conftest import load_event; "
            "h.handler(load_event('http_api_v2'), None)")
    return loaded_in_lazy_mode(code, set(modules), **environment)


@pytest.fixture
def event():
    """Load a stored event by name; each call returns a fresh copy to mutate."""
    return lambda name: copy.deepcopy(load_event(name))


@pytest.fixture
def lambda_context():
    return SimpleNamespace(
        function_name="fastapi-lambda-dev-Api",
        function_version="1",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fastapi-lambda-dev-Api:live",
        memory_limit_in_mb=1024,
        aws_request_id="9f5b7c9e-0000-4000-8000-000000000000",
        log_group_name="/aws/lambda/fastapi-lambda-dev-Api",
        log_stream_name="2026/11/28/[1]abcdef",
        get_remaining_time_in_millis=lambda: 12000,
    )


@pytest.fixture
def mangum_must_not_run(monkeypatch):
    """Fails the test if the event reaches Mangum (and so the web app)."""
    from service.handler import handler

    def fail(event, context):
        # pytest.fail raises a BaseException, which the handler's 400 guard cannot swallow.
        pytest.fail("a non-HTTP event reached Mangum")

    monkeypatch.setattr(handler, "asgi", fail)


# --- AWS stand-ins: one moto server per session, fresh resources per test ------------------------

MAX_RECEIVE_COUNT = 3


@pytest.fixture(scope="session")
def moto_endpoint():
    """A moto server on a free local port; boto3 reaches it through ``AWS_ENDPOINT_URL``."""
    from fastapi_lambda import lifecycle
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request would bury the app's logs
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as session:
        for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            session.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_DYNAMODB"):
            session.delenv(name, raising=False)
        for resource in lifecycle._registry:  # clients made before now point elsewhere
            session.setattr(resource, "value", None)
        yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def aws(moto_endpoint):
    """The tests' own boto3 clients for the moto server."""
    import boto3

    return SimpleNamespace(**{name: boto3.client(name, endpoint_url=moto_endpoint) for name in ("sqs", "dynamodb", "s3")})


@pytest.fixture
def task_infra(aws, monkeypatch):
    """A queue with a dead-letter queue, a status table and a files bucket, named for this test only."""
    return new_task_infra(aws, monkeypatch.setenv)


def new_task_infra(aws, setenv) -> SimpleNamespace:
    """:func:`task_infra`'s resources, named in the environment with ``setenv``."""
    from fastapi_lambda.constants import TASK_TABLE_KEY

    name = f"t{uuid.uuid4().hex[:12]}"
    dlq_url = aws.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
    queue_url = aws.sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive,
                                                                  "VisibilityTimeout": "30"})["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": TASK_TABLE_KEY, "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": TASK_TABLE_KEY, "AttributeType": "S"}])
    aws.s3.create_bucket(Bucket=name)
    setenv("TASK_QUEUE_URL", queue_url)
    setenv("TASK_TABLE_NAME", name)
    return SimpleNamespace(queue_url=queue_url, queue_arn=queue_arn, dlq_url=dlq_url, table=name, bucket=name)


# --- identity: a user pool, app clients and a user on moto's Cognito, their real tokens ----------------

@pytest.fixture(scope="session")
def identity(moto_endpoint):
    """A pool with two app clients and a user, their real tokens, a second pool, and keys of our own."""
    import urllib.request

    import boto3
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from fastapi_lambda.constants import AUTH_CLIENT_IDS_VARIABLE, AUTH_ISSUER_VARIABLE, AUTH_JWKS_URL_VARIABLE

    from cdk_app.local.identity import LOCAL_EMAIL, LOCAL_PASSWORD, create_local_identity

    main = create_local_identity(moto_endpoint)
    pool = main["pool_id"]
    cognito = boto3.client("cognito-idp", endpoint_url=moto_endpoint)
    other_client = cognito.create_user_pool_client(
        UserPoolId=pool, ClientName="other", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"])["UserPoolClient"]
    other = cognito.admin_initiate_auth(UserPoolId=pool, ClientId=other_client["ClientId"],
                                        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                                        AuthParameters={"USERNAME": LOCAL_EMAIL, "PASSWORD": LOCAL_PASSWORD})
    user = cognito.admin_get_user(UserPoolId=pool, Username=LOCAL_EMAIL)
    with urllib.request.urlopen(main[AUTH_JWKS_URL_VARIABLE], timeout=5) as response:  # moto's, as the app reads it
        public_key = jwt.PyJWK(json.load(response)["keys"][0]).key
    return SimpleNamespace(
        settings={name: main[name] for name in (AUTH_ISSUER_VARIABLE, AUTH_JWKS_URL_VARIABLE, AUTH_CLIENT_IDS_VARIABLE)},
        access=main["access_token"], id=main["id_token"], client_id=main[AUTH_CLIENT_IDS_VARIABLE],
        other_client_id=other_client["ClientId"], other_client_access=other["AuthenticationResult"]["AccessToken"],
        other_pool_access=create_local_identity(moto_endpoint)["access_token"],
        sub=next(a["Value"] for a in user["UserAttributes"] if a["Name"] == "sub"),
        public_pem=public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        own_key=rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def verifying(identity, monkeypatch):
    """Verifying mode (no gateway claims in the events): the settings ``local-token`` prints."""
    for name, value in identity.settings.items():
        monkeypatch.setenv(name, value)
    return identity


# --- app settings: a parameter path, a secret and a SecureString on moto ----------------------------

SECRET_VALUE = "s3cr3t-partner-key-9f8e7d"
SECURE_VALUE = "s3cure-string-value-1a2b3c"


@pytest.fixture
def parameters(moto_endpoint, monkeypatch):
    """A parameter path, a secret and a SecureString of this test's own, named in the environment;
    ``calls`` counts the API calls the runtime's readers make (the boundary is moto's server)."""
    from collections import Counter

    from fastapi_lambda import parameters as config

    created = new_parameters(moto_endpoint, monkeypatch.setenv)
    monkeypatch.delenv("CONFIG_SECURE_PARAMETERS", raising=False)
    monkeypatch.delenv("CONFIG_MAX_AGE_SECONDS", raising=False)
    calls: Counter[str] = Counter()
    for provider in (config.ssm_provider, config.secrets_provider):
        provider.get().client.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
    created.calls = calls
    yield created
    forget_settings()


def new_parameters(moto_endpoint: str, setenv) -> SimpleNamespace:
    """:func:`parameters`' path, secret and SecureString, named in the environment with ``setenv``; the
    readers and the settings they read are forgotten."""
    import boto3

    name = f"t{uuid.uuid4().hex[:12]}"
    path = f"/fastapi-lambda/{name}/"
    ssm, secretsmanager = (boto3.client(s, endpoint_url=moto_endpoint) for s in ("ssm", "secretsmanager"))
    ssm.put_parameter(Name=f"{path}greeting", Value="Hello from Parameter Store", Type="String")
    ssm.put_parameter(Name=f"{path}page-size", Value="50", Type="String")
    secret_arn = secretsmanager.create_secret(Name=f"{name}/partner", SecretString=SECRET_VALUE)["ARN"]
    ssm.put_parameter(Name=f"/{name}/secure", Value=SECURE_VALUE, Type="SecureString")
    setenv("CONFIG_PARAMETER_PATH", path)
    setenv("CONFIG_SECRETS", f'{{"partner_api_key": "{secret_arn}"}}')
    forget_settings()
    return SimpleNamespace(path=path, name=name, ssm=ssm, secretsmanager=secretsmanager, secret_arn=secret_arn,
                           secure_name=f"/{name}/secure")


def forget_settings() -> None:
    """The settings readers (and what they cached) made again on next use."""
    from fastapi_lambda import parameters as config
    from service import parameters as service_config

    for app_config in (service_config.settings, service_config.secrets):
        app_config.clear()
    config.ssm_provider.reset()
    config.secrets_provider.reset()
