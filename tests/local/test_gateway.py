"""The local gateway's rules, on small templates of both API kinds, with a function that echoes its event.

No bundle runs here: the functions are a stand-in that answers with the event it got, so each
test sees exactly what API Gateway would send the function, and what it answers for it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives.asymmetric import rsa

from cdk_app.local import gateway as gateway_module
from cdk_app.local.aws import ACCESS_KEY_ID, SECRET_ACCESS_KEY, LocalAws
from cdk_app.local.gateway import Answer, Gateway, Request, TokenBucket, proxy_answer, read_apis
from cdk_app.local.runtime import InvokeResult
from cdk_app.local.template import Physical, Resolver, StackTemplate

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Test"
CLIENT = "client1"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
TARGET = {"Fn::Join": ["", ["integrations/", {"Ref": "Integration"}]]}
URI = {"Fn::Join": ["", ["arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/", {"Ref": "Alias"},
                         "/invocations"]]}


def resource(kind: str, **properties) -> dict:
    return {"Type": kind, "Properties": properties}


FUNCTION = {"Function": resource("AWS::Lambda::Function", Handler="h.handler", Runtime="python3.13"),
            "Alias": resource("AWS::Lambda::Alias", FunctionName={"Ref": "Function"}, FunctionVersion="1", Name="live")}

HTTP_API = {
    **FUNCTION,
    "Api": resource("AWS::ApiGatewayV2::Api", Name="http", ProtocolType="HTTP", CorsConfiguration={
        "AllowOrigins": ["http://localhost:3000"], "AllowMethods": ["GET", "POST"], "AllowHeaders": ["Authorization"],
        "MaxAge": 600}),
    "Integration": resource("AWS::ApiGatewayV2::Integration", ApiId={"Ref": "Api"}, IntegrationType="AWS_PROXY",
                            IntegrationUri={"Ref": "Alias"}, PayloadFormatVersion="2.0"),
    "Authorizer": resource("AWS::ApiGatewayV2::Authorizer", ApiId={"Ref": "Api"}, AuthorizerType="JWT",
                           IdentitySource=["$request.header.Authorization"],
                           JwtConfiguration={"Audience": [CLIENT], "Issuer": ISSUER}),
    "Default": resource("AWS::ApiGatewayV2::Route", ApiId={"Ref": "Api"}, RouteKey="$default", Target=TARGET,
                        AuthorizationType="JWT", AuthorizerId={"Ref": "Authorizer"},
                        AuthorizationScopes=["openid", "api/read"]),
    # NONE with scopes: what CDK's default scopes leave on open routes; API Gateway never applies them.
    "Health": resource("AWS::ApiGatewayV2::Route", ApiId={"Ref": "Api"}, RouteKey="GET /health", Target=TARGET,
                       AuthorizationType="NONE", AuthorizationScopes=["openid"]),
    "Item": resource("AWS::ApiGatewayV2::Route", ApiId={"Ref": "Api"}, RouteKey="GET /items/{id}", Target=TARGET),
    "Items": resource("AWS::ApiGatewayV2::Route", ApiId={"Ref": "Api"}, RouteKey="ANY /items/{proxy+}",
                      Target=TARGET),
    "Admin": resource("AWS::ApiGatewayV2::Route", ApiId={"Ref": "Api"}, RouteKey="POST /admin", Target=TARGET,
                      AuthorizationType="AWS_IAM"),
    "Reports": resource("AWS::ApiGatewayV2::Route", ApiId={"Ref": "Api"}, RouteKey="POST /reports", Target=TARGET,
                        AuthorizationType="AWS_IAM"),
    "Stage": resource("AWS::ApiGatewayV2::Stage", ApiId={"Ref": "Api"}, StageName="$default",
                      DefaultRouteSettings={"ThrottlingBurstLimit": 40, "ThrottlingRateLimit": 20},
                      RouteSettings={"POST /admin": {"ThrottlingBurstLimit": 2, "ThrottlingRateLimit": 1}}),
}

REST_API = {
    **FUNCTION,
    "Pool": resource("AWS::Cognito::UserPool"),
    "Rest": resource("AWS::ApiGateway::RestApi", Name="rest"),
    "Tasks": resource("AWS::ApiGateway::Resource", RestApiId={"Ref": "Rest"}, PathPart="tasks",
                      ParentId={"Fn::GetAtt": ["Rest", "RootResourceId"]}),
    "Task": resource("AWS::ApiGateway::Resource", RestApiId={"Ref": "Rest"}, PathPart="{id}", ParentId={"Ref": "Tasks"}),
    "Authorizer": resource("AWS::ApiGateway::Authorizer", RestApiId={"Ref": "Rest"}, Type="COGNITO_USER_POOLS",
                           IdentitySource="method.request.header.Authorization",
                           ProviderARNs=[{"Fn::GetAtt": ["Pool", "Arn"]}]),
    "Root": resource("AWS::ApiGateway::Method", RestApiId={"Ref": "Rest"}, HttpMethod="GET", AuthorizationType="NONE",
                     ResourceId={"Fn::GetAtt": ["Rest", "RootResourceId"]}, Integration={"Type": "AWS_PROXY",
                                                                                      "Uri": URI}),
    "GetTask": resource("AWS::ApiGateway::Method", RestApiId={"Ref": "Rest"}, HttpMethod="GET",
                        ResourceId={"Ref": "Task"}, AuthorizationType="COGNITO_USER_POOLS",
                        AuthorizerId={"Ref": "Authorizer"}, Integration={"Type": "AWS_PROXY", "Uri": URI}),
    "PostTasks": resource("AWS::ApiGateway::Method", RestApiId={"Ref": "Rest"}, HttpMethod="POST",
                          ResourceId={"Ref": "Tasks"}, AuthorizationType="COGNITO_USER_POOLS",
                          AuthorizerId={"Ref": "Authorizer"}, AuthorizationScopes=["api/tasks.write"],
                          Integration={"Type": "AWS_PROXY", "Uri": URI}),
    "Options": resource("AWS::ApiGateway::Method", RestApiId={"Ref": "Rest"}, HttpMethod="OPTIONS",
                        ResourceId={"Ref": "Tasks"}, AuthorizationType="NONE", Integration={
                            "Type": "MOCK", "IntegrationResponses": [{"StatusCode": "204", "ResponseParameters": {
                                "method.response.header.Access-Control-Allow-Origin": "'http://localhost:3000'"}}]}),
    "Stage": resource("AWS::ApiGateway::Stage", RestApiId={"Ref": "Rest"}, StageName="api", MethodSettings=[
        {"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingBurstLimit": 100, "ThrottlingRateLimit": 50}]),
}


class Echo:
    """Functions that answer with the event they got (or as told by ``answer``)."""

    def __init__(self) -> None:
        self.answer: object = None
        self.events: list[dict] = []

    def invoke(self, reference: str, payload: bytes) -> InvokeResult:
        event = json.loads(payload)
        self.events.append(event)
        if self.answer == "error":
            return InvokeResult("r", b'{"errorType": "ValueError"}', "Unhandled")
        answer = self.answer if self.answer is not None else {
            "statusCode": 200, "headers": {"content-type": "application/json", "content-length": "1"},
            "body": json.dumps(event)}
        return InvokeResult("r", json.dumps(answer).encode())


class StaticKeys:
    def key(self, issuer: str, kid: str):
        if kid != "k1":
            raise jwt.PyJWKClientError(f"unknown kid {kid}")
        return KEY.public_key()


def token(*, key: rsa.RSAPrivateKey | str = KEY, kid="k1", **claims) -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "sub": "user-1", "iat": now, "exp": now + 600, **claims}, key,
                      algorithm="RS256", headers={"kid": kid})


ACCESS = {"token_use": "access", "client_id": CLIENT, "scope": "openid api/read api/tasks.write", "username": "u1"}
ID = {"token_use": "id", "aud": CLIENT, "email": "dev@example.com", "email_verified": True}


def gateway_for(resources: dict) -> tuple[Gateway, Echo]:
    stack = StackTemplate(name="s", folder=Path("."), template={"Resources": resources})
    resolver = Resolver(stack)
    LocalAws(stack, resolver, Path(".")).name_functions()
    resolver.physical["Pool"] = Physical("us-east-1_Test", {
        "Arn": "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Test"})
    (api,) = read_apis(stack, resolver)
    echo = Echo()
    return Gateway(api, echo, StaticKeys(), region="us-east-1", account="123456789012", log=lambda line: None), echo


@pytest.fixture
def http():
    return gateway_for(HTTP_API)


@pytest.fixture
def rest():
    return gateway_for(REST_API)


def request(method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b"",
            bearer: str | None = None) -> Request:
    raw, _, query = path.partition("?")
    listed = list((headers or {}).items()) + ([("Authorization", f"Bearer {bearer}")] if bearer else [])
    return Request(method, raw, raw, query, [("Host", "127.0.0.1:3000"), ("User-Agent", "test"), *listed], body,
                   "127.0.0.1", "127.0.0.1:3000")


def event_of(answer: Answer) -> dict:
    assert answer.status == 200, (answer.status, answer.body, answer.note)
    return json.loads(answer.body)


# --- HTTP API ---------------------------------------------------------------------------------------

def test_an_open_route_ignores_scopes_and_sends_no_authorizer(http):
    gateway, _ = http
    event = event_of(gateway.handle(request("GET", "/health")))
    assert event["routeKey"] == "GET /health" and "authorizer" not in event["requestContext"]
    assert event["version"] == "2.0" and event["rawPath"] == "/health"


def test_the_most_specific_route_wins(http):
    gateway, _ = http
    item = event_of(gateway.handle(request("GET", "/items/42?a=1&a=2")))
    assert (item["routeKey"], item["pathParameters"]) == ("GET /items/{id}", {"id": "42"})
    assert item["queryStringParameters"] == {"a": "1,2"} and item["rawQueryString"] == "a=1&a=2"
    nested = event_of(gateway.handle(request("DELETE", "/items/42/parts/7")))
    assert (nested["routeKey"], nested["pathParameters"]) == ("ANY /items/{proxy+}", {"proxy": "42/parts/7"})


def test_unmatched_requests_take_the_default_route_and_its_authorizer(http):
    gateway, _ = http
    answer = gateway.handle(request("GET", "/me"))
    assert (answer.status, json.loads(answer.body)) == (401, {"message": "Unauthorized"})


def test_a_valid_access_token_reaches_the_function_with_its_claims_as_text(http):
    gateway, _ = http
    event = event_of(gateway.handle(request("GET", "/me", bearer=token(**ACCESS))))
    jwt_context = event["requestContext"]["authorizer"]["jwt"]
    assert jwt_context["claims"]["token_use"] == "access" and isinstance(jwt_context["claims"]["exp"], str)
    assert jwt_context["scopes"] == ["openid", "api/read", "api/tasks.write"]
    assert event["routeKey"] == "$default"


@pytest.mark.parametrize(("claims", "key", "kid", "reason"), [
    ({**ACCESS, "client_id": "someone-else"}, KEY, "k1", "the token does not have a valid audience"),
    ({**ACCESS, "iss": "https://elsewhere.example"}, KEY, "k1", "the token does not have a valid issuer"),
    ({**ACCESS, "exp": int(time.time()) - 60}, KEY, "k1", "the token has expired"),
    (ACCESS, OTHER_KEY, "k1", "the token signature is invalid"),
    (ACCESS, KEY, "unknown", "the token signature is invalid"),
])
def test_a_bad_token_is_401_with_the_reason_in_www_authenticate(http, claims, key, kid, reason):
    gateway, echo = http
    answer = gateway.handle(request("GET", "/me", bearer=token(key=key, kid=kid, **claims)))
    assert answer.status == 401
    assert f'error="invalid_token" error_description="{reason}' in dict(answer.headers)["www-authenticate"]
    assert echo.events == []


def test_a_valid_token_without_the_routes_scopes_is_403(http):
    gateway, echo = http
    answer = gateway.handle(request("GET", "/me", bearer=token(**ID)))  # an ID token: no scope at all
    assert (answer.status, json.loads(answer.body)) == (403, {"message": "Forbidden"})
    assert dict(answer.headers)["www-authenticate"] == (
        'Bearer scope="openid api/read" error="insufficient_scope" error_description="expected scopes: '
        '[openid api/read]"')
    assert echo.events == []


def signed_request(method: str, path: str, body: bytes = b"", secret: str = SECRET_ACCESS_KEY) -> Request:
    url = f"http://127.0.0.1:3000{path}"
    aws = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(Credentials(ACCESS_KEY_ID, secret), "execute-api", "us-east-1").add_auth(aws)
    return request(method, path, headers=dict(aws.headers), body=body)


def test_an_iam_route_takes_a_valid_signature_only(http):
    gateway, _ = http
    assert gateway.handle(request("POST", "/reports")).status == 403
    assert gateway.handle(signed_request("POST", "/reports", b"{}", secret="wrong")).status == 403
    tampered = signed_request("POST", "/reports", b"{}")
    tampered.body = b'{"more": 1}'
    assert gateway.handle(tampered).status == 403
    event = event_of(gateway.handle(signed_request("POST", "/reports", b'{"a": 1}')))
    assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == ACCESS_KEY_ID
    assert event["body"] == '{"a": 1}' and event["isBase64Encoded"] is False


def test_route_throttles_replace_the_stage_default(http, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(gateway_module.time, "monotonic", lambda: now[0])
    gateway, _ = gateway_for(HTTP_API)  # buckets made under the fake clock
    statuses = [gateway.handle(signed_request("POST", "/admin")).status for _ in range(3)]
    assert statuses == [200, 200, 429]  # burst 2
    now[0] += 1.0  # rate 1 per second
    assert [gateway.handle(signed_request("POST", "/admin")).status for _ in range(2)] == [200, 429]
    assert all(gateway.handle(request("GET", "/health")).status == 200 for _ in range(40))
    assert gateway.handle(request("GET", "/health")).status == 429  # the stage's burst of 40


def test_token_bucket_refills_at_its_rate(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(gateway_module.time, "monotonic", lambda: now[0])
    bucket = TokenBucket(rate=5, burst=10)
    assert sum(bucket.take() for _ in range(20)) == 10
    now[0] += 0.5
    assert sum(bucket.take() for _ in range(20)) == 2
    assert TokenBucket(rate=100, burst=0).take() is False


def test_cors_preflight_is_answered_by_the_gateway_for_allowed_origins(http):
    gateway, echo = http
    preflight = request("OPTIONS", "/me", headers={"Origin": "http://localhost:3000",
                                                   "Access-Control-Request-Method": "POST"})
    answer = gateway.handle(preflight)
    headers = dict(answer.headers)
    assert answer.status == 204 and headers["access-control-allow-origin"] == "http://localhost:3000"
    assert headers["access-control-allow-methods"] == "GET,POST" and headers["access-control-max-age"] == "600"
    other = gateway.handle(request("OPTIONS", "/me", headers={"Origin": "http://evil.example",
                                                              "Access-Control-Request-Method": "POST"}))
    assert "access-control-allow-origin" not in dict(other.headers)
    assert echo.events == []


def test_cookies_and_binary_bodies_are_shaped_as_payload_2_0(http):
    gateway, _ = http
    event = event_of(gateway.handle(request("POST", "/items/1/raw", headers={"Cookie": "a=1; b=2"},
                                            body=b"\xff\x00")))
    assert event["cookies"] == ["a=1", "b=2"] and "cookie" not in event["headers"]
    assert event["isBase64Encoded"] is True and event["body"] == "/wA="
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_function_errors_and_bad_answers_are_500_on_an_http_api(http):
    gateway, echo = http
    echo.answer = "error"
    assert gateway.handle(request("GET", "/health")).status == 500
    echo.answer = {"statusCode": "two hundred"}
    assert gateway.handle(request("GET", "/health")).status == 500
    echo.answer = {"just": "json"}  # payload 2.0: any JSON without statusCode is a 200 body
    answer = gateway.handle(request("GET", "/health"))
    assert (answer.status, json.loads(answer.body)) == (200, {"just": "json"})


def test_proxy_answers_keep_multi_value_headers_and_cookies_but_not_content_length():
    answer = proxy_answer({"statusCode": 201, "headers": {"Content-Length": "99", "X-One": "1"},
                           "multiValueHeaders": {"X-Two": ["a", "b"]}, "cookies": ["c=1"], "body": "aGk=",
                           "isBase64Encoded": True}, "2.0")
    assert answer.status == 201 and answer.body == b"hi"
    assert answer.headers == [("X-One", "1"), ("X-Two", "a"), ("X-Two", "b"), ("Set-Cookie", "c=1"),
                              ("Content-Type", "application/json")]


# --- REST API ---------------------------------------------------------------------------------------

def test_rest_serves_under_its_stage_and_refuses_unknown_resources_like_aws(rest):
    gateway, _ = rest
    event = event_of(gateway.handle(request("GET", "/api/")))
    assert (event["resource"], event["path"], event["requestContext"]["stage"]) == ("/", "/", "api")
    assert json.loads(gateway.handle(request("GET", "/api/nothing")).body) == {"message": "Missing Authentication "
                                                                                          "Token"}
    assert json.loads(gateway.handle(request("DELETE", "/api/tasks")).body) == {"message": "Missing Authentication "
                                                                                           "Token"}
    assert gateway.handle(request("GET", "/prod/")).status == 403


def test_rest_cognito_takes_an_id_token_where_the_method_has_no_scopes(rest):
    gateway, _ = rest
    event = event_of(gateway.handle(request("GET", "/api/tasks/7", bearer=token(**ID))))
    assert event["pathParameters"] == {"id": "7"} and event["resource"] == "/tasks/{id}"
    claims = event["requestContext"]["authorizer"]["claims"]
    assert claims["email_verified"] == "true" and claims["exp"].endswith(" UTC " + claims["exp"][-4:])
    assert gateway.handle(request("GET", "/api/tasks/7", bearer=token(**ACCESS))).status == 401
    assert gateway.handle(request("GET", "/api/tasks/7")).status == 401


def test_rest_cognito_takes_an_access_token_with_a_methods_scope(rest):
    gateway, _ = rest
    assert gateway.handle(request("POST", "/api/tasks", bearer=token(**ACCESS), body=b"{}")).status == 200
    assert gateway.handle(request("POST", "/api/tasks", bearer=token(**ID), body=b"{}")).status == 401
    no_scope = {**ACCESS, "scope": "openid"}
    assert gateway.handle(request("POST", "/api/tasks", bearer=token(**no_scope), body=b"{}")).status == 401


def test_rest_events_are_the_proxy_format_and_errors_are_502(rest):
    gateway, echo = rest
    event = event_of(gateway.handle(request("GET", "/api/?q=1&q=2", headers={"X-Many": "a"})))
    assert event["multiValueQueryStringParameters"] == {"q": ["1", "2"]} and event["queryStringParameters"] == {
        "q": "2"}
    assert event["multiValueHeaders"]["X-Many"] == ["a"] and event["requestContext"]["path"] == "/api/"
    echo.answer = "error"
    assert (gateway.handle(request("GET", "/api/")).status, echo.answer) == (502, "error")
    echo.answer = {"body": "no status code"}
    assert gateway.handle(request("GET", "/api/")).status == 502


def test_rest_mock_integrations_answer_without_a_function(rest):
    gateway, echo = rest
    answer = gateway.handle(request("OPTIONS", "/api/tasks"))
    assert answer.status == 204 and ("Access-Control-Allow-Origin", "http://localhost:3000") in answer.headers
    assert echo.events == []
