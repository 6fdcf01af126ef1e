"""Identity end to end: real tokens from moto's Cognito in server mode, checked against its JWKS
endpoint, through the Lambda handler with API Gateway events; forged tokens that must all be refused.

moto's USER_PASSWORD_AUTH tokens carry only ``aws.cognito.signin.user.admin``; a token with
resource-server scopes, or claims moto never writes (an expiry in the past), is signed with
moto's published test key (:func:`cdk_app.local.identity.moto_signed`), which its JWKS serves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import shlex
import socket
import time
import uuid

import boto3
import jwt
import pytest
from fastapi.testclient import TestClient
from fastapi_lambda import auth, lifecycle
from fastapi_lambda.constants import (
    AUTH_CLIENT_IDS_VARIABLE,
    AUTH_ISSUER_VARIABLE,
    AUTH_JWKS_URL_VARIABLE,
    AUTH_TOKEN_USE_VARIABLE,
    AUTH_VERIFY_VARIABLE,
    TASKS_WRITE_SCOPE,
)
from service.handler import handler
from service.main import create_app

from cdk_app.local import identity as local_identity
from cdk_app.local.identity import (
    LOCAL_EMAIL,
    LOCAL_PASSWORD,
    moto_signed,
    moto_token_with_scopes,
)
from tests.app.conftest import (
    GATEWAY_CLIENT_ID,
    GATEWAY_ISSUER,
    app_routes,
    http_answer,
    http_event,
    jwt_authorizer,
    loaded_in_lazy_mode,
)

#: The only scope moto puts into the tokens of a USER_PASSWORD_AUTH sign-in.
ADMIN_SCOPE = "aws.cognito.signin.user.admin"
REPORT = {"type": "generate-report", "payload": {"name": "sales", "rows": 4}}


def call(path: str = "/me", *, token: str | None = None, authorization: str | None = None, kind: str = "http_api_v2",
         authorizer: dict | None = None, method: str = "GET", body: dict | None = None):
    """Invoke the Lambda handler with an API Gateway event (HTTP API 2.0 or REST); status, headers, JSON body."""
    headers = {"authorization": authorization or f"Bearer {token}"} if authorization or token else {}
    event = http_event(method, path, kind=kind, body=json.dumps(body) if body is not None else None, headers=headers,
                       authorizer=authorizer)
    response = handler(event, None)
    assert response["statusCode"] != 500
    return http_answer(response)


def unverified(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict, claims: dict, signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- real tokens -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["http_api_v2", "rest_api_v1"])
def test_a_real_access_token_names_the_caller(verifying, kind):
    status, _, me = call(token=verifying.access, kind=kind)

    assert status == 200
    # An email sign-in pool: the username is the sub, as in Cognito.
    assert me == {"sub": verifying.sub, "username": verifying.sub, "scopes": [ADMIN_SCOPE],
                  "client_id": verifying.client_id, "token_use": "access"}


def test_every_listed_client_is_accepted(verifying, monkeypatch):
    monkeypatch.setenv(AUTH_CLIENT_IDS_VARIABLE, f"{verifying.client_id}, {verifying.other_client_id}")

    assert call(token=verifying.other_client_access)[2]["client_id"] == verifying.other_client_id


def test_locally_without_lambda_the_token_is_verified(verifying):
    client = TestClient(create_app(environment="test"))

    assert client.get("/me", headers={"Authorization": f"Bearer {verifying.access}"}).json()["sub"] == verifying.sub
    assert client.get("/me").status_code == 401


def test_id_tokens_when_the_api_expects_them(verifying, monkeypatch):
    monkeypatch.setenv(AUTH_TOKEN_USE_VARIABLE, "id")

    status, _, me = call(token=verifying.id)

    assert status == 200 and me["token_use"] == "id" and me["client_id"] == verifying.client_id
    assert call(token=verifying.access)[0] == 401


def test_an_id_token_of_another_client_is_refused(verifying, monkeypatch, moto_endpoint):
    monkeypatch.setenv(AUTH_TOKEN_USE_VARIABLE, "id")
    cognito = boto3.client("cognito-idp", endpoint_url=moto_endpoint)
    pool = verifying.settings[AUTH_ISSUER_VARIABLE].rsplit("/", 1)[1]
    other = cognito.admin_initiate_auth(UserPoolId=pool, ClientId=verifying.other_client_id,
                                        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                                        AuthParameters={"USERNAME": LOCAL_EMAIL, "PASSWORD": LOCAL_PASSWORD})

    assert call(token=other["AuthenticationResult"]["IdToken"])[0] == 401


# --- the attack matrix: 401 with a Bearer challenge, never 500 ------------------------------------

def now() -> int:
    return int(time.time())


def hs256_with_the_public_key(i) -> str:
    """The classic confusion: HMAC-signed with the RSA public key as the secret, hoping a verifier uses it so."""
    header = {"alg": "HS256", "kid": "dummy", "typ": "JWT"}
    signing_input = compact(header, unverified(i.access)).rsplit(".", 1)[0]
    signature = hmac.new(i.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered_claims(i) -> str:
    header, _, signature = i.access.split(".")
    claims = {**unverified(i.access), "scope": f"{ADMIN_SCOPE} {TASKS_WRITE_SCOPE}"}
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


def tampered_signature(i) -> str:
    head, _, signature = i.access.rpartition(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{b64(bytes(raw))}"


def own_key(i, kid: str | None) -> str:
    return jwt.encode(unverified(i.access), i.own_key, algorithm="RS256", headers={"kid": kid} if kid else None)


def without(claims: dict, name: str) -> dict:
    return {k: v for k, v in claims.items() if k != name}


#: name -> the Authorization header (None: none at all), made from the identity fixture.
ATTACKS = {
    "no header": lambda i: None,
    "another scheme": lambda i: f"Basic {b64(b'dev@example.com:secret')}",
    "bearer without a token": lambda i: "Bearer ",
    "malformed token": lambda i: "Bearer not-a-jwt",
    "header is not JSON": lambda i: f"Bearer {b64(b'{oops')}.e30.",
    "not ASCII": lambda i: "Bearer \u00e9t\u00e9.\u00e9t\u00e9.\u00e9t\u00e9",
    "oversized": lambda i: f"Bearer {i.access}{'A' * auth.MAX_TOKEN_LENGTH}",
    "alg none": lambda i: "Bearer " + compact({"alg": "none", "kid": "dummy", "typ": "JWT"}, unverified(i.access)),
    "alg none by PyJWT": lambda i: "Bearer " + jwt.encode(unverified(i.access), "", algorithm="none",
                                                          headers={"kid": "dummy"}),
    "HS256 keyed with the public key": lambda i: f"Bearer {hs256_with_the_public_key(i)}",
    "expired": lambda i: "Bearer " + moto_signed({**unverified(i.access), "iat": now() - 7200, "exp": now() - 3600}),
    "issued in the future": lambda i: "Bearer " + moto_signed({**unverified(i.access), "iat": now() + 3600,
                                                               "exp": now() + 7200}),
    "no expiry": lambda i: "Bearer " + moto_signed(without(unverified(i.access), "exp")),
    "no token_use": lambda i: "Bearer " + moto_signed(without(unverified(i.access), "token_use")),
    "wrong issuer (a real token of another pool)": lambda i: f"Bearer {i.other_pool_access}",
    "wrong client (a real token of another client)": lambda i: f"Bearer {i.other_client_access}",
    "an ID token where an access token is required": lambda i: f"Bearer {i.id}",
    "tampered claims": lambda i: f"Bearer {tampered_claims(i)}",
    "tampered signature": lambda i: f"Bearer {tampered_signature(i)}",
    "signed with another key under moto's kid": lambda i: f"Bearer {own_key(i, 'dummy')}",
    "unknown kid": lambda i: f"Bearer {own_key(i, 'attacker-key')}",
    "no kid": lambda i: f"Bearer {own_key(i, None)}",
}
NO_TOKEN = {"no header", "another scheme", "bearer without a token"}


@pytest.mark.parametrize("kind", ["http_api_v2", "rest_api_v1"])
@pytest.mark.parametrize("name", ATTACKS)
def test_every_forged_or_foreign_token_is_refused(verifying, name, kind, caplog):
    caplog.set_level(logging.INFO, logger=auth.logger.name)
    authorization = ATTACKS[name](verifying)

    status, headers, body = call(authorization=authorization, kind=kind)

    assert status == 401, body
    challenge = headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert ('error="invalid_token"' in challenge) is (name not in NO_TOKEN)
    assert any(getattr(r, "reason", None) for r in caplog.records), "the reason is logged"
    token = (authorization or "").partition(" ")[2]
    assert len(token) < 20 or token[-20:] not in caplog.text, "the token itself is never logged"


def test_the_matrix_token_for_a_valid_claim_set_would_pass(verifying):
    # The attacks above differ from a token that passes by their one defect only.
    assert call(token=moto_signed(unverified(verifying.access)))[0] == 200


# --- every route the gateway does not declare public checks the caller in the app too --------------

def declared_public_routes() -> dict[str, list[str]]:
    """``api.public_routes`` of each environment in cdk.json (what the gateway leaves open)."""
    from cdk_app.settings import load_settings, read_cdk_json_context

    return {name: env.api.public_routes for name, env in load_settings(read_cdk_json_context()).environments.items()}


def is_public(method: str, path: str, declared: list[str]) -> bool:
    """Whether the gateway matches ``method path`` with one of the ``declared`` routes: ``{name}`` is one
    segment, a final ``{name+}`` the rest, ``ANY`` every method."""
    for route in declared:
        route_method, template = route.split(" ", 1)
        parts = [".+" if s.endswith("+}") else "[^/]+" if s.startswith("{") else re.escape(s)
                 for s in template.split("/")[1:]]
        if route_method in (method, "ANY") and re.fullmatch("/" + "/".join(parts), path):
            return True
    return False


def method_and_template(route: str) -> tuple[str, str]:
    """``"POST /tasks"`` as ``("POST", "/tasks")``."""
    method, _, template = route.partition(" ")
    return method, template


def concrete(template: str) -> str:
    """A path template with a valid value in each placeholder."""
    return re.sub(r"\{[^}]+\}", "abc123", template)


#: Bodies that pass validation, so a refusal can only come from the caller's check.
VALID_BODIES = {"POST /tasks": REPORT}


@pytest.mark.parametrize("environment", declared_public_routes())
@pytest.mark.parametrize("mode", ["verifying", "verify_in_function with gateway claims"])
def test_every_route_outside_the_declared_public_ones_refuses_missing_and_forged_tokens(environment, mode, verifying,
                                                                                       monkeypatch):
    public = declared_public_routes()[environment]
    monkeypatch.setenv(AUTH_VERIFY_VARIABLE, "true")
    claims = jwt_authorizer(TASKS_WRITE_SCOPE, iss=verifying.settings[AUTH_ISSUER_VARIABLE],
                            client_id=verifying.client_id) if mode != "verifying" else None
    routes = app_routes(create_app(environment="test"))
    attacks = [attack(verifying) for attack in ATTACKS.values()]
    answered = {}

    for method, template in sorted(routes):
        path, body = concrete(template), VALID_BODIES.get(f"{method} {template}")
        if is_public(method, path, public):
            answered[f"{method} {template}"] = {call(path, method=method, body=body)[0]}
            continue
        answered[f"{method} {template}"] = {call(path, method=method, body=body, kind=kind, authorizer=claims,
                                                 authorization=authorization)[0]
                                            for authorization in attacks for kind in ("http_api_v2", "rest_api_v1")}

    assert {route: statuses for route, statuses in answered.items() if not is_public(*method_and_template(route), public)} \
        == {f"{method} {template}": {401} for method, template in routes if not is_public(method, concrete(template), public)}
    assert all(answered[route] == {200} for route in public if route in answered)
    assert len(answered) > len(public) + 5  # the walk found the app's routes


# --- the signing keys: fetched rarely, kept through outages ------------------------------------

def count_fetches(keys: auth.SigningKeys, monkeypatch) -> list[float]:
    fetches: list[float] = []
    fetch = keys.client.fetch_data
    monkeypatch.setattr(keys.client, "fetch_data", lambda: fetches.append(time.monotonic()) or fetch())
    return fetches


def test_unknown_kids_refresh_the_keys_at_most_once_per_interval(verifying, monkeypatch):
    assert call(token=verifying.access)[0] == 200  # the first fetch
    keys = auth.signing_keys.get()
    fetches = count_fetches(keys, monkeypatch)

    for _ in range(5):
        assert call(token=own_key(verifying, uuid.uuid4().hex))[0] == 401
    assert fetches == []  # the first fetch was less than an interval ago

    keys.attempted_at -= auth.JWKS_MIN_REFRESH_S  # an interval later
    for _ in range(5):
        assert call(token=own_key(verifying, uuid.uuid4().hex))[0] == 401
    assert len(fetches) == 1
    assert call(token=verifying.access)[0] == 200 and len(fetches) == 1


def test_the_keys_are_fetched_again_after_their_ttl(verifying, monkeypatch):
    assert call(token=verifying.access)[0] == 200
    keys = auth.signing_keys.get()
    fetches = count_fetches(keys, monkeypatch)
    keys.fetched_at -= auth.JWKS_TTL_S
    keys.attempted_at -= auth.JWKS_TTL_S

    assert call(token=verifying.access)[0] == 200 and len(fetches) == 1


def test_a_jwks_endpoint_that_is_down_answers_503_and_is_not_hammered(verifying, monkeypatch, caplog):
    monkeypatch.setenv(AUTH_JWKS_URL_VARIABLE, f"http://127.0.0.1:{closed_port()}/jwks.json")

    status, headers, body = call(token=verifying.access)

    assert status == 503 and headers["retry-after"] == str(auth.RETRY_AFTER_S)
    assert "try again later" in body["detail"]
    assert "Could not fetch the signing keys" in caplog.text
    keys = auth.signing_keys.get()
    attempted = keys.attempted_at
    assert call(token=verifying.access)[0] == 503 and keys.attempted_at == attempted  # no second try yet
    assert call()[0] == 401  # no token is still a 401


def test_known_keys_survive_a_failed_refresh(verifying, caplog):
    assert call(token=verifying.access)[0] == 200
    keys = auth.signing_keys.get()
    keys.client.uri = f"http://127.0.0.1:{closed_port()}/jwks.json"
    keys.fetched_at -= auth.JWKS_TTL_S
    keys.attempted_at -= auth.JWKS_TTL_S

    assert call(token=verifying.access)[0] == 200
    assert "Could not fetch the signing keys" in caplog.text


def test_a_snapstart_restore_makes_new_signing_keys(verifying):
    assert call(token=verifying.access)[0] == 200
    before = auth.signing_keys.value

    lifecycle.after_restore()

    assert auth.signing_keys.value is None
    assert call(token=verifying.access)[0] == 200 and auth.signing_keys.value is not before


# --- configuration -----------------------------------------------------------------------------

def test_without_an_issuer_a_token_cannot_be_verified_503(identity, caplog):
    status, headers, body = call(token=identity.access)

    assert status == 503 and body == {"detail": "Authentication is not configured"}
    assert "needs AUTH_ISSUER and AUTH_CLIENT_IDS" in caplog.text
    assert call()[0] == 401


def test_a_wrong_token_use_setting_is_a_clear_503(verifying, monkeypatch, caplog):
    monkeypatch.setenv(AUTH_TOKEN_USE_VARIABLE, "refresh")

    assert call(token=verifying.access)[0] == 503
    assert "AUTH_TOKEN_USE='refresh' must be 'access' or 'id'" in caplog.text


# --- scopes ------------------------------------------------------------------------------------

def test_a_token_without_the_scope_gets_403(verifying):
    status, headers, _ = call("/tasks", method="POST", body=REPORT, token=verifying.access)

    assert status == 403
    assert headers["www-authenticate"] == f'Bearer realm="api", error="insufficient_scope", scope="{TASKS_WRITE_SCOPE}"'


def test_a_token_with_the_scope_may_create_tasks(verifying):
    token = moto_token_with_scopes(verifying.access, [TASKS_WRITE_SCOPE])

    status, _, body = call("/tasks", method="POST", body=REPORT, token=token)

    assert status == 202
    assert call(f"/tasks/{body['id']}", token=token)[0] == 200
    assert call(f"/tasks/{body['id']}")[0] == 401  # reading a task needs a signed-in caller too


def test_gateway_claims_without_the_scope_get_403():
    assert call("/tasks", method="POST", body=REPORT, authorizer=jwt_authorizer(ADMIN_SCOPE))[0] == 403


# --- claims the gateway verified ---------------------------------------------------------------

def test_http_api_jwt_authorizer_claims(monkeypatch):
    monkeypatch.setenv(AUTH_ISSUER_VARIABLE, GATEWAY_ISSUER)
    monkeypatch.setenv(AUTH_CLIENT_IDS_VARIABLE, GATEWAY_CLIENT_ID)

    status, _, me = call(authorizer=jwt_authorizer(ADMIN_SCOPE, TASKS_WRITE_SCOPE))

    assert status == 200
    assert me == {"sub": "5f4e3d2c-0000-4000-8000-00000000abcd", "username": "5f4e3d2c-0000-4000-8000-00000000abcd",
                  "scopes": sorted([ADMIN_SCOPE, TASKS_WRITE_SCOPE]), "client_id": GATEWAY_CLIENT_ID,
                  "token_use": "access"}


def test_http_api_payload_1_claims():
    flat = jwt_authorizer(TASKS_WRITE_SCOPE)["jwt"]  # payload 1.0: claims and scopes without the jwt level
    flat["claims"]["scope"] = ""

    assert call(authorizer=flat, kind="rest_api_v1")[2]["scopes"] == [TASKS_WRITE_SCOPE]


def test_rest_api_cognito_authorizer_claims():
    # The REST authorizer writes dates as text and no scopes list; the scope claim holds them.
    claims = {"sub": "8d7c6b5a-0000-4000-8000-000000000001", "iss": GATEWAY_ISSUER, "client_id": GATEWAY_CLIENT_ID,
              "token_use": "access", "scope": f"{ADMIN_SCOPE} {TASKS_WRITE_SCOPE}", "username": "8d7c6b5a",
              "auth_time": "1764291500", "exp": "Fri Nov 28 02:00:00 UTC 2026", "iat": "Fri Nov 28 01:00:00 UTC 2026"}

    status, _, me = call(authorizer={"claims": claims}, kind="rest_api_v1")

    assert status == 200 and me["sub"] == claims["sub"] and me["scopes"] == sorted([ADMIN_SCOPE, TASKS_WRITE_SCOPE])
    assert call("/tasks", method="POST", body=REPORT, authorizer={"claims": claims}, kind="rest_api_v1")[0] == 202


@pytest.mark.parametrize(("setting", "claims"), [
    (None, {"token_use": "id", "aud": GATEWAY_CLIENT_ID}),  # e.g. REST's authorizer on a method without scopes
    ((AUTH_CLIENT_IDS_VARIABLE, "another-client"), {}),  # REST's Cognito authorizer checks no client
    ((AUTH_ISSUER_VARIABLE, "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"), {}),
    (None, {"sub": ""}),
], ids=["id token", "client not listed", "another pool", "no sub"])
def test_gateway_claims_not_meant_for_this_api_are_refused(setting, claims, monkeypatch):
    if setting:
        monkeypatch.setenv(*setting)

    status, headers, _ = call(authorizer=jwt_authorizer(ADMIN_SCOPE, **claims))

    assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"]


def test_defense_in_depth_verifies_the_token_despite_gateway_claims(verifying, monkeypatch):
    monkeypatch.setenv(AUTH_VERIFY_VARIABLE, "true")

    assert call(authorizer=jwt_authorizer(TASKS_WRITE_SCOPE))[0] == 401
    status, _, me = call(authorizer=jwt_authorizer(TASKS_WRITE_SCOPE), token=verifying.access)
    assert status == 200 and me["sub"] == verifying.sub and me["scopes"] == [ADMIN_SCOPE]


def test_the_gateway_path_loads_no_jwt_library():
    code = ("import service.handler as h; from tests.app.conftest import jwt_authorizer, load_event\n"
            "e = load_event('http_api_v2'); e['rawPath'] = e['requestContext']['http']['path'] = '/me'\n"
            "e['requestContext']['authorizer'] = jwt_authorizer()\n"
            "assert h.handler(e, None)['statusCode'] == 200")

    assert loaded_in_lazy_mode(code, {"jwt", "cryptography", "cffi"}) == []


# --- the local command -------------------------------------------------------------------------

def test_local_token_prints_what_make_serve_needs(moto_endpoint, capsys, monkeypatch):
    assert local_identity.main(["local-token", "--endpoint", moto_endpoint, "--scope", TASKS_WRITE_SCOPE]) == 0

    exports = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1)
                   for line in capsys.readouterr().out.splitlines())
    assert set(exports) == {AUTH_ISSUER_VARIABLE, AUTH_JWKS_URL_VARIABLE, AUTH_CLIENT_IDS_VARIABLE, "TOKEN"}
    for name, value in exports.items():
        monkeypatch.setenv(name, value)
    assert call(token=exports["TOKEN"])[2]["scopes"] == sorted([ADMIN_SCOPE, TASKS_WRITE_SCOPE])
    assert call("/tasks", method="POST", body=REPORT, token=exports["TOKEN"])[0] == 202


def test_no_bundle_holds_the_local_tool_a_password_or_moto():
    """What the constructs copy into every function (the runtime package, the example service) is
    runtime code only: the local-token tool and its test password live in ``cdk_app.local``."""
    import ast
    from pathlib import Path

    import fastapi_lambda
    import service

    found = []
    for package in (fastapi_lambda, service):
        assert package.__file__ is not None  # regular packages, not namespace ones
        for path in Path(package.__file__).parent.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                found += [f"{path.name}: imports {n}" for n in names if n.split(".")[0] == "moto"]
                if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant) \
                        and isinstance(node.value.value, str):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    found += [f"{path.name}: {ast.unparse(t)} = {node.value.value!r}" for t in targets
                              if "passw" in ast.unparse(t).lower()]
            found += [f"{path.name}: {LOCAL_PASSWORD!r}" for _ in [0] if LOCAL_PASSWORD in path.read_text()]

    assert found == []


# --- for the app's own tests and for eager mode ---------------------------------------------------

def test_a_test_may_override_the_caller():
    app = create_app(environment="test")
    app.dependency_overrides[auth.current_user] = lambda: auth.User(
        "tester", None, frozenset({TASKS_WRITE_SCOPE}), None, "access", {}, "test")

    assert TestClient(app).post("/tasks", json=REPORT).status_code == 202


@pytest.mark.parametrize("verify", ["false", "true"])
def test_eager_mode_prepares_the_signing_keys_at_init(verifying, monkeypatch, verify):
    for resource in lifecycle._registry:
        monkeypatch.setattr(resource, "value", None)
    monkeypatch.setenv("IMPORT_MODE", "eager")
    monkeypatch.setenv(AUTH_VERIFY_VARIABLE, verify)

    lifecycle.prepare(None)

    # Made and fetched before traffic only where every request verifies a token; behind the gateway's
    # authorizer not made at all (PyJWT stays unloaded until a token must be verified here).
    if verify == "true":
        assert auth.signing_keys.value is not None and auth.signing_keys.value.keys is not None
    else:
        assert auth.signing_keys.value is None
