"""API Gateway from the template: routes, authorizers, throttles and proxy events, on a local port.

An HTTP API (``AWS::ApiGatewayV2::*``) or a REST API (``AWS::ApiGateway::*``) is read from the
template and served as API Gateway serves it:

- **Routes**: the HTTP API's route keys (most specific first: exact, then path variables,
  then a greedy ``{proxy+}``, then ``$default``; ``METHOD`` before ``ANY``), or the REST API's
  resource tree and methods; each integration names a function (through its alias).
- **Authorization**: ``NONE`` is open (scopes there are ignored, as a deployed API never has
  them); a JWT authorizer (HTTP) checks the signature against the issuer's keys (the local user
  pool's), ``iss``, ``aud`` or ``client_id`` against the audience, ``exp``/``nbf``, and that the
  token carries one of the route's scopes (401, or 403 for a missing scope, with the same
  ``www-authenticate`` header); a Cognito authorizer (REST) takes an ID token on a method without
  scopes and an access token with one of the method's scopes otherwise (401); ``AWS_IAM`` checks
  a SigV4 signature made with the local credentials (403).
- **Throttling**: token buckets per stage and per route or method (429).
- **Events**: payload format 2.0 or 1.0 (HTTP API), the REST proxy event (1.0), with the
  verified claims in ``requestContext.authorizer``; responses mapped back as API Gateway maps them
  (a function error is a 500, or a 502 on REST).
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import hmac
import json
import re
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cdk_app.local.aws import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from cdk_app.local.processes import Handler, QuietServer, port_of
from cdk_app.local.runtime import InvokeResult, Log, Throttled, print_log
from cdk_app.local.template import LocalError, Physical, Resolver, StackTemplate, short_id
from cdk_app.shapes import is_array, is_object

#: The longest API Gateway waits for an integration by default (HTTP API 30 s, REST 29 s).
HTTP_INTEGRATION_TIMEOUT_MS = 30_000
REST_INTEGRATION_TIMEOUT_MS = 29_000


# --- requests and answers -------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str  # decoded, without the query
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    host: str
    received: float = field(default_factory=time.time)
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def header(self, name: str) -> str | None:
        found = [value for key, value in self.headers if key.lower() == name.lower()]
        return ",".join(found) if found else None

    def query(self) -> list[tuple[str, str]]:
        return urllib.parse.parse_qsl(self.raw_query, keep_blank_values=True)


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    note: str = ""  # for the access log: why the gateway answered this itself

    @classmethod
    def message(cls, status: int, message: str, note: str = "", headers: list[tuple[str, str]] | None = None) -> Answer:
        return cls(status, [("Content-Type", "application/json"), *(headers or [])],
                   json.dumps({"message": message}).encode(), note or message)


class TokenBucket:
    """API Gateway's throttle: ``rate`` requests per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = float(rate), int(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


# --- token and signature checks -------------------------------------------------------------------

class Denied(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.note)
        self.answer = answer


class Invoker(Protocol):
    """What the gateway invokes functions through: :class:`cdk_app.local.lambda_api.LocalLambda` (tests: a fake)."""

    def invoke(self, reference: str, payload: bytes) -> InvokeResult: ...


class SigningKeys(Protocol):
    """Where the gateway gets a token's verification key: :class:`Keys` (tests: a fixed key)."""

    def key(self, issuer: str, kid: str) -> Any: ...


class Keys:
    """Signing keys by issuer: the local user pools' from moto, any other from its ``/.well-known/jwks.json``."""

    def __init__(self, jwks_urls: Mapping[str, str]) -> None:
        self.jwks_urls = dict(jwks_urls)
        self.clients: dict[str, Any] = {}
        self.lock = threading.Lock()

    def key(self, issuer: str, kid: str) -> Any:
        import jwt

        with self.lock:
            if issuer not in self.clients:
                url = self.jwks_urls.get(issuer) or f"{issuer.rstrip('/')}/.well-known/jwks.json"
                self.clients[issuer] = jwt.PyJWKClient(url, cache_keys=True, timeout=5)
            client = self.clients[issuer]
        return client.get_signing_key(kid).key


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import jwt

    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def verify_jwt(token: str, keys: SigningKeys, *, issuers: list[str], audiences: list[str] | None) -> dict[str, Any]:
    """The claims of a token signed by one of ``issuers`` (RSA), in its validity, for one of ``audiences``.

    Raises ``ValueError`` naming the failed check, worded as API Gateway words it.
    """
    import jwt

    try:
        header, claims = _unverified(token)
    except jwt.PyJWTError:
        raise ValueError("the token is not a valid JWT") from None
    if not str(header.get("alg", "")).startswith("RS"):
        raise ValueError("the token's signing algorithm is not supported")
    issuer = claims.get("iss")
    if issuer not in issuers:
        raise ValueError("the token does not have a valid issuer")
    try:
        key = keys.key(issuer, str(header.get("kid")))
        claims = jwt.decode(token, key, algorithms=[header["alg"]], options={"verify_aud": False, "verify_iss": False,
                                                                             "require": ["exp"]})
    except jwt.ExpiredSignatureError:
        raise ValueError("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise ValueError("the token is not valid yet") from None
    except (jwt.PyJWTError, KeyError) as error:
        raise ValueError(f"the token signature is invalid ({error})") from None
    if audiences is not None:
        audience = claims.get("aud", claims.get("client_id"))  # aud wins when both are present
        granted: list[Any] = audience if is_array(audience) else [audience]
        if not set(granted) & set(audiences):
            raise ValueError("the token does not have a valid audience")
    return claims


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    scope = claims.get("scope", claims.get("scp", ""))
    return scope.split() if isinstance(scope, str) else [s for s in scope if isinstance(s, str)]


def claims_as_text(claims: Mapping[str, Any], *, dates: bool = False) -> dict[str, str]:
    """Claims as API Gateway passes them on: every value as text (REST writes exp/iat as dates)."""

    def text(name: str, value: Any) -> str:
        if dates and name in ("exp", "iat") and isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
        if isinstance(value, bool):
            return str(value).lower()
        if is_array(value):
            return "[" + " ".join(str(v) for v in value) + "]"
        return str(value)

    return {name: text(name, value) for name, value in claims.items()}


def verify_sigv4(request: Request, region: str) -> None:
    """A SigV4 signature (service ``execute-api``) made with the local credentials, or :class:`ValueError`."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = request.header("Authorization") or ""
    match = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, *"
                     r"SignedHeaders=([^,]+), *Signature=([0-9a-f]+)", authorization)
    if not match:
        raise ValueError("missing")
    key_id, _, signed_region, service, signed_headers, signature = match.groups()
    if key_id != ACCESS_KEY_ID:
        raise ValueError("The security token included in the request is invalid.")
    names = signed_headers.split(";")
    headers = {name: request.header(name) or "" for name in names}
    url = f"http://{request.host}{request.raw_path}" + (f"?{request.raw_query}" if request.raw_query else "")
    signed = AWSRequest(method=request.method, url=url, headers=headers, data=request.body)
    signed.context["timestamp"] = headers.get("x-amz-date", "")
    auth = SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), service, signed_region)
    canonical = auth.canonical_request(signed)
    expected = auth.signature(auth.string_to_sign(signed, canonical), signed)
    if not hmac.compare_digest(expected, signature) or signed_region != region:
        raise ValueError("The request signature we calculated does not match the signature you provided. Check "
                         "your AWS Secret Access Key and signing method. Consult the service documentation for "
                         "details.")


# --- the APIs -------------------------------------------------------------------------------------

@dataclass
class Integration:
    function: str  # the function's ARN or name, with its qualifier (the alias)
    payload_version: str = "2.0"
    timeout_ms: int = HTTP_INTEGRATION_TIMEOUT_MS
    mock: dict[str, Any] | None = None  # a REST MOCK integration (CORS preflight): status and headers


@dataclass
class Authorizer:
    kind: str  # "JWT" (HTTP API) or "COGNITO_USER_POOLS" (REST)
    issuers: list[str]
    audiences: list[str] | None = None
    header: str = "Authorization"


@dataclass
class Route:
    key: str  # "GET /tasks/{id}", "ANY /{proxy+}", "$default" (REST: "GET /tasks/{id}" too)
    method: str
    path: str
    integration: Integration
    authorization: str = "NONE"
    authorizer: Authorizer | None = None
    scopes: tuple[str, ...] = ()
    throttle: TokenBucket | None = None
    resource_id: str = ""
    pattern: re.Pattern[str] | None = None
    greedy: bool = False
    literals: int = 0

    def __post_init__(self) -> None:
        if self.key == "$default":
            return
        regex, self.literals = "", 0
        for segment in [s for s in self.path.split("/") if s]:
            variable = re.fullmatch(r"\{([^}+]+)(\+?)\}", segment)
            if variable and variable.group(2):
                regex += f"/(?P<{_group(variable.group(1))}>.+)"
                self.greedy = True
            elif variable:
                regex += f"/(?P<{_group(variable.group(1))}>[^/]+)"
            else:
                regex += "/" + re.escape(segment)
                self.literals += 1
        self.pattern = re.compile(regex or "/")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.pattern is None or self.method not in (method, "ANY"):
            return None
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {_names[group]: urllib.parse.unquote(value) for group, value in found.groupdict().items()}

    def rank(self) -> tuple[int, int, int, int]:
        """More specific first: no greedy variable, more literal segments, fewer variables, a method over ANY."""
        variables = len(self.pattern.groupindex) if self.pattern else 0
        return (not self.greedy, self.literals, -variables, self.method != "ANY")


_names: dict[str, str] = {}


def _group(name: str) -> str:
    """A regex group name for a path variable (which may hold characters groups may not)."""
    group = "v" + hashlib.sha256(name.encode()).hexdigest()[:12]
    _names[group] = name
    return group


@dataclass
class Api:
    """One API of the template, ready to serve."""

    kind: str  # "http" or "rest"
    logical_id: str
    api_id: str
    name: str
    stage: str
    routes: list[Route]
    stage_throttle: TokenBucket | None
    cors: Mapping[str, Any] | None = None
    default_route: Route | None = None

    @property
    def base_path(self) -> str:
        return "" if self.stage == "$default" else f"/{self.stage}"


def _throttle(settings: Mapping[str, Any] | None, rate_key: str, burst_key: str) -> TokenBucket | None:
    if not settings or (rate_key not in settings and burst_key not in settings):
        return None
    return TokenBucket(float(settings.get(rate_key, 10_000)), int(settings.get(burst_key, 5_000)))


def name_apis(stack: StackTemplate, resolver: Resolver) -> None:
    """API Gateway ids, for what refers to them: an API's id, its parts' ids are their logical ids."""
    for logical_id, resource in stack.resources.items():
        kind = resource["Type"]
        if kind in ("AWS::ApiGatewayV2::Api", "AWS::ApiGateway::RestApi"):
            api_id = short_id(logical_id)
            resolver.physical[logical_id] = Physical(api_id, {
                "ApiId": api_id, "RootResourceId": f"{logical_id}/", "ApiEndpoint": f"https://{api_id}.local"})
        elif kind.startswith(("AWS::ApiGatewayV2::", "AWS::ApiGateway::")):
            resolver.physical[logical_id] = Physical(logical_id, {"AuthorizerId": logical_id,
                                                                  "ResourceId": logical_id})


def read_apis(stack: StackTemplate, resolver: Resolver) -> list[Api]:
    """Every HTTP and REST API of the template (WebSocket APIs are not served)."""
    name_apis(stack, resolver)
    apis = [_http_api(stack, resolver, logical_id) for logical_id, resource in
            stack.of_type("AWS::ApiGatewayV2::Api").items()
            if resource.get("Properties", {}).get("ProtocolType", "HTTP") == "HTTP"]
    return apis + [_rest_api(stack, resolver, logical_id) for logical_id in stack.of_type("AWS::ApiGateway::RestApi")]


def _of_api(stack: StackTemplate, resolver: Resolver, kind: str, api_logical_id: str,
            key: str = "ApiId") -> dict[str, Mapping[str, Any]]:
    api_id = resolver.physical[api_logical_id].ref
    return {logical_id: resolver.resolve(r.get("Properties", {})) for logical_id, r in stack.of_type(kind).items()
            if resolver.resolve(r.get("Properties", {}).get(key)) == api_id}


def _function_of(uri: str) -> str:
    """The function (ARN with its qualifier) an integration URI names."""
    found = re.search(r":lambda:path/\d{4}-\d{2}-\d{2}/functions/(.+?)/invocations", uri)
    return found.group(1) if found else uri


def _http_api(stack: StackTemplate, resolver: Resolver, logical_id: str) -> Api:
    properties = resolver.resolve(stack.properties(logical_id))
    integrations = {lid: Integration(_function_of(p["IntegrationUri"]), p.get("PayloadFormatVersion", "1.0"),
                                     int(p.get("TimeoutInMillis", HTTP_INTEGRATION_TIMEOUT_MS)))
                    for lid, p in _of_api(stack, resolver, "AWS::ApiGatewayV2::Integration", logical_id).items()
                    if p.get("IntegrationType") == "AWS_PROXY"}
    authorizers = {lid: Authorizer("JWT", [p["JwtConfiguration"]["Issuer"]], list(p["JwtConfiguration"].get(
        "Audience", [])), _identity_header(p.get("IdentitySource", ["$request.header.Authorization"])[0]))
        for lid, p in _of_api(stack, resolver, "AWS::ApiGatewayV2::Authorizer", logical_id).items()
        if p.get("AuthorizerType") == "JWT"}
    stages = _of_api(stack, resolver, "AWS::ApiGatewayV2::Stage", logical_id)
    default_stage: Mapping[str, Any] = {"StageName": "$default"}
    stage = next(iter(stages.values()), default_stage)
    route_settings: dict[str, Any] = stage.get("RouteSettings", {})
    routes: list[Route] = []
    for p in _of_api(stack, resolver, "AWS::ApiGatewayV2::Route", logical_id).values():
        target = str(p.get("Target", "")).removeprefix("integrations/")
        if target not in integrations:
            continue  # an integration that is not a Lambda proxy
        key = p["RouteKey"]
        method, _, path = key.partition(" ") if key != "$default" else ("ANY", "", "")
        authorization = p.get("AuthorizationType", "NONE")
        routes.append(Route(
            key, method, path, integrations[target], authorization,
            authorizers.get(p.get("AuthorizerId", "")), tuple(p.get("AuthorizationScopes", []))
            if authorization in ("JWT", "COGNITO_USER_POOLS") else (),  # NONE: scopes never apply
            _throttle(route_settings.get(key), "ThrottlingRateLimit", "ThrottlingBurstLimit")))
    return Api("http", logical_id, resolver.physical[logical_id].ref, properties.get("Name", logical_id),
               stage.get("StageName", "$default"), [r for r in routes if r.key != "$default"],
               _throttle(stage.get("DefaultRouteSettings"), "ThrottlingRateLimit", "ThrottlingBurstLimit"),
               properties.get("CorsConfiguration"), next((r for r in routes if r.key == "$default"), None))


def _identity_header(source: str) -> str:
    return source.split(".")[-1] if source.startswith(("$request.header.", "method.request.header.")) else \
        "Authorization"


def _rest_api(stack: StackTemplate, resolver: Resolver, logical_id: str) -> Api:
    properties = resolver.resolve(stack.properties(logical_id))
    resources = _of_api(stack, resolver, "AWS::ApiGateway::Resource", logical_id, "RestApiId")
    root = f"{logical_id}/"

    def path_of(resource_id: str) -> str:
        if resource_id == root:
            return "/"
        resource = resources[resource_id]
        parent = path_of(resource["ParentId"])
        return f"{parent.rstrip('/')}/{resource['PathPart']}"

    authorizers: dict[str, Authorizer] = {}
    for lid, p in _of_api(stack, resolver, "AWS::ApiGateway::Authorizer", logical_id, "RestApiId").items():
        if p.get("Type") == "COGNITO_USER_POOLS":  # each pool's issuer follows from its ARN
            issuers = [f"https://cognito-idp.{arn.split(':')[3]}.amazonaws.com/{arn.split('/')[-1]}"
                       for arn in p.get("ProviderARNs", [])]
            authorizers[lid] = Authorizer("COGNITO_USER_POOLS", issuers, None,
                                          _identity_header(p.get("IdentitySource", "method.request.header.Authorization")))
    stages = _of_api(stack, resolver, "AWS::ApiGateway::Stage", logical_id, "RestApiId")
    default_stage: Mapping[str, Any] = {"StageName": "prod"}
    stage = next(iter(stages.values()), default_stage)
    default_throttle: TokenBucket | None = None
    method_throttles: dict[tuple[str | None, str], TokenBucket] = {}
    setting: dict[str, Any]
    for setting in stage.get("MethodSettings", []):
        bucket = _throttle(setting, "ThrottlingRateLimit", "ThrottlingBurstLimit")
        if setting.get("ResourcePath") == "/*" and setting.get("HttpMethod") == "*":
            default_throttle = bucket
        elif bucket is not None:
            path = "/" + setting.get("ResourcePath", "/").lstrip("/").replace("~1", "/")
            method_throttles[(setting.get("HttpMethod"), path.rstrip("/") or "/")] = bucket
    routes: list[Route] = []
    for p in _of_api(stack, resolver, "AWS::ApiGateway::Method", logical_id, "RestApiId").values():
        integration = p.get("Integration", {})
        path, method = path_of(p["ResourceId"]), p["HttpMethod"]
        if integration.get("Type") == "AWS_PROXY":
            target = Integration(_function_of(integration["Uri"]), "1.0",
                                 int(integration.get("TimeoutInMillis", REST_INTEGRATION_TIMEOUT_MS)))
        elif integration.get("Type") == "MOCK":
            responses: list[dict[str, Any]] = integration.get("IntegrationResponses") or [{}]
            response = responses[0]
            target = Integration("", "mock", mock={"status": int(response.get("StatusCode", 200)), "headers": {
                k.removeprefix("method.response.header."): str(v).strip("'")
                for k, v in response.get("ResponseParameters", {}).items()}})
        else:
            continue
        authorization = p.get("AuthorizationType", "NONE")
        routes.append(Route(f"{method} {path}", method, path, target, authorization,
                            authorizers.get(p.get("AuthorizerId", "")),
                            tuple(p.get("AuthorizationScopes", [])) if authorization == "COGNITO_USER_POOLS" else (),
                            method_throttles.get((method, path)), p["ResourceId"]))
    return Api("rest", logical_id, resolver.physical[logical_id].ref, properties.get("Name", logical_id),
               stage.get("StageName", "prod"), routes, default_throttle)


# --- serving ------------------------------------------------------------------------------------------

class Gateway:
    """Serves one :class:`Api` on a local port, invoking functions through :class:`LocalLambda`."""

    def __init__(self, api: Api, functions: Invoker, keys: SigningKeys, *, region: str, account: str,
                 log: Log = print_log) -> None:
        self.api, self.functions, self.keys, self.region, self.account, self.log = api, functions, keys, region, \
            account, log
        self.server: QuietServer | None = None
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"{api.name}-invoke")

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.api.base_path}/"

    def serve(self, port: int) -> Gateway:
        gateway = self

        class GatewayHandler(Handler):
            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except ConnectionError:
                    self.close_connection = True

            def __getattr__(self, name: str) -> Callable[[], None]:
                if name.startswith("do_"):  # every method, the way API Gateway takes them
                    return self.serve_request
                raise AttributeError(name)

            def serve_request(self) -> None:
                try:
                    body = self.read_body()
                except ValueError:  # a chunk size that is not one
                    self.close_connection = True
                    answer = Answer.message(400, "Bad Request")
                    return self.reply(answer.status, answer.body, answer.headers)
                split = urllib.parse.urlsplit(self.path)
                request = Request(self.command, urllib.parse.unquote(split.path), split.path, split.query,
                                  list(self.headers.items()), body, self.client_address[0],
                                  self.headers.get("Host", f"127.0.0.1:{port_of(self.server)}"))
                started = time.perf_counter()
                try:
                    answer = gateway.handle(request)
                except Exception as error:  # a fault of the local gateway itself: said, not hidden
                    gateway.log(f"gateway | {request.method} {request.raw_path}: local gateway error: "
                                f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
                    answer = Answer.message(500, "Internal Server Error", "local gateway error")
                self.reply(answer.status, answer.body, answer.headers)
                gateway.log(f"gateway | {request.method} {request.raw_path} {answer.status} "
                            f"{(time.perf_counter() - started) * 1000:.1f} ms" + (f" ({answer.note})" if answer.note
                                                                                else ""))

            def read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.body()

        try:
            self.server = QuietServer(("127.0.0.1", port), GatewayHandler)
        except OSError as error:
            raise LocalError(f"cannot serve {self.api.name} on 127.0.0.1:{port} ({error.strerror}); another "
                             "program has the port: choose another with LOCAL_PORT=<port> (--port)") from None
        threading.Thread(target=self.server.serve_forever, name=f"gateway-{self.api.name}", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- one request ---------------------------------------------------------------------------------

    def handle(self, request: Request) -> Answer:
        api = self.api
        try:
            answer = self._answer(request)
        except Denied as denied:
            answer = denied.answer
        if api.cors:
            answer.headers = self._with_cors(request, answer.headers)
        answer.headers.append(("apigw-requestid" if api.kind == "http" else "x-amzn-RequestId", request.request_id))
        return answer

    def _answer(self, request: Request) -> Answer:
        api = self.api
        if api.cors and request.method == "OPTIONS" and request.header("Origin") and \
                request.header("Access-Control-Request-Method"):
            return Answer(204, note="CORS preflight")  # an HTTP API with CORS answers preflights itself
        path = request.path
        if api.base_path:
            if path != api.base_path and not path.startswith(api.base_path + "/"):
                raise Denied(Answer.message(403, "Forbidden", "no such stage"))
            path = path[len(api.base_path):] or "/"
        route, parameters = self._route(request.method, path)
        bucket = route.throttle or api.stage_throttle  # a route's own limits replace the stage's
        if bucket is not None and not bucket.take():
            raise Denied(Answer.message(429, "Too Many Requests", "throttled"))
        authorizer_context = self._authorize(route, request)
        if route.integration.mock is not None:
            mock = route.integration.mock
            return Answer(mock["status"], list(mock["headers"].items()), note="mock integration")
        return self._invoke(route, request, path, parameters, authorizer_context)

    def _route(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        matches = [(route, found) for route in self.api.routes if (found := route.match(method, path)) is not None]
        if matches:
            route, found = max(matches, key=lambda match: match[0].rank())
            return route, found
        if self.api.default_route is not None:
            return self.api.default_route, {}
        if self.api.kind == "rest":  # REST answers an unknown resource or method like a missing signature
            raise Denied(Answer.message(403, "Missing Authentication Token", "no such resource or method"))
        raise Denied(Answer.message(404, "Not Found", "no route"))

    def _authorize(self, route: Route, request: Request) -> dict[str, Any] | None:
        """The ``requestContext.authorizer`` of an allowed request; :class:`Denied` otherwise."""
        kind = route.authorization
        if kind == "NONE":
            return None
        if kind == "AWS_IAM":
            try:
                verify_sigv4(request, self.region)
            except ValueError as error:
                message = str(error)
                if message == "missing":
                    message = "Forbidden" if self.api.kind == "http" else "Missing Authentication Token"
                raise Denied(Answer.message(403, message, f"IAM: {message}")) from None
            return {"iam": {"accessKey": ACCESS_KEY_ID, "accountId": self.account}} if self.api.kind == "http" else None
        authorizer = route.authorizer
        if authorizer is None:
            self.log(f"gateway | {route.key}: {kind} authorizers are not run locally; refusing the request")
            raise Denied(Answer.message(500, "Internal Server Error", f"{kind} authorizer not run locally"))
        value = (request.header(authorizer.header) or "").strip()
        token = value[7:].strip() if value.lower().startswith("bearer ") else value
        if kind == "JWT":
            return self._jwt(route, authorizer, token)
        return self._cognito(route, authorizer, token)

    def _jwt(self, route: Route, authorizer: Authorizer, token: str) -> dict[str, Any]:
        if not token:
            raise Denied(Answer.message(401, "Unauthorized", "JWT: no token"))
        try:
            claims = verify_jwt(token, self.keys, issuers=authorizer.issuers, audiences=authorizer.audiences)
        except ValueError as error:
            challenge = f'Bearer scope="{" ".join(route.scopes)}" error="invalid_token" error_description="{error}"'
            raise Denied(Answer.message(401, "Unauthorized", f"JWT: {error}", [("www-authenticate", challenge)])) \
                from None
        scopes = token_scopes(claims)
        if route.scopes and not set(scopes) & set(route.scopes):
            wanted = " ".join(route.scopes)
            challenge = (f'Bearer scope="{wanted}" error="insufficient_scope" '
                         f'error_description="expected scopes: [{wanted}]"')
            raise Denied(Answer.message(403, "Forbidden", "JWT: insufficient scope", [("www-authenticate", challenge)]))
        return {"claims": claims_as_text(claims), "scopes": scopes or None}

    def _cognito(self, route: Route, authorizer: Authorizer, token: str) -> dict[str, Any]:
        unauthorized = Answer.message(401, "Unauthorized")
        if not token:
            raise Denied(Answer.message(401, "Unauthorized", "Cognito: no token"))
        try:
            claims = verify_jwt(token, self.keys, issuers=authorizer.issuers, audiences=None)
        except ValueError as error:
            unauthorized.note = f"Cognito: {error}"
            raise Denied(unauthorized) from None
        # Without scopes on the method the token is taken as an ID token; with scopes, as an access token
        # that must carry one of them.
        expected = "access" if route.scopes else "id"
        if claims.get("token_use") != expected:
            unauthorized.note = f"Cognito: an {expected} token is required here"
            raise Denied(unauthorized)
        if route.scopes and not set(token_scopes(claims)) & set(route.scopes):
            unauthorized.note = "Cognito: insufficient scope"
            raise Denied(unauthorized)
        return {"claims": claims_as_text(claims, dates=True)}

    def _invoke(self, route: Route, request: Request, path: str, parameters: dict[str, str],
                authorizer: dict[str, Any] | None) -> Answer:
        integration = route.integration
        event = (http_event_v2 if integration.payload_version == "2.0" else proxy_event_v1)(
            self.api, route, request, path, parameters, authorizer, self.account)
        failure = (500, "Internal Server Error") if self.api.kind == "http" else (502, "Internal server error")
        future = self.executor.submit(self.functions.invoke, integration.function, json.dumps(event).encode())
        try:
            result = future.result(timeout=integration.timeout_ms / 1000)
        except concurrent.futures.TimeoutError:
            status, message = (503, "Service Unavailable") if self.api.kind == "http" else \
                (504, "Endpoint request timed out")
            return Answer.message(status, message, "integration timeout")
        except Throttled as error:
            return Answer.message(*failure, f"the function was throttled: {error}")
        except LocalError as error:
            return Answer.message(*failure, str(error))
        if not result.ok:
            return Answer.message(*failure, f"the function failed ({result.error})")
        try:
            return proxy_answer(result.json(), integration.payload_version)
        except (ValueError, TypeError, KeyError) as error:
            return Answer.message(*failure, f"malformed Lambda proxy response: {error}")

    def _with_cors(self, request: Request, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The HTTP API's CORS headers (the integration's own are replaced), when the origin is allowed."""
        cors = self.api.cors or {}
        origin = request.header("Origin")
        headers = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
        allowed = cors.get("AllowOrigins", [])
        if not origin or not ("*" in allowed or origin in allowed):
            return headers
        headers.append(("access-control-allow-origin", "*" if "*" in allowed and not cors.get("AllowCredentials")
                        else origin))
        if cors.get("AllowCredentials"):
            headers.append(("access-control-allow-credentials", "true"))
        if request.method == "OPTIONS":
            for key, header in (("AllowMethods", "access-control-allow-methods"),
                                ("AllowHeaders", "access-control-allow-headers")):
                if cors.get(key):
                    headers.append((header, ",".join(cors[key])))
            if cors.get("MaxAge") is not None:
                headers.append(("access-control-max-age", str(cors["MaxAge"])))
        elif cors.get("ExposeHeaders"):
            headers.append(("access-control-expose-headers", ",".join(cors["ExposeHeaders"])))
        return headers


# --- events and answers, as API Gateway builds them ---------------------------------------------------

def _body(request: Request) -> tuple[str | None, bool]:
    if not request.body:
        return None, False
    try:
        return request.body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(request.body).decode(), True


def _forwarded(request: Request) -> list[tuple[str, str]]:
    """The headers API Gateway adds to what the client sent."""
    port = request.host.rpartition(":")[2] if ":" in request.host else "80"
    trace = f"Root=1-{int(request.received):08x}-{uuid.uuid4().hex[:24]}"
    added = [("X-Forwarded-For", request.source_ip), ("X-Forwarded-Port", port), ("X-Forwarded-Proto", "http")]
    if request.header("X-Amzn-Trace-Id") is None:
        added.append(("X-Amzn-Trace-Id", trace))
    return [*request.headers, *added]


def http_event_v2(api: Api, route: Route, request: Request, path: str, parameters: dict[str, str],
                  authorizer: dict[str, Any] | None, account: str) -> dict[str, Any]:
    """An HTTP API event, payload format 2.0."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in _forwarded(request):
        if name.lower() == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        headers[name.lower()] = f"{headers[name.lower()]},{value}" if name.lower() in headers else value
    query: dict[str, str] = {}
    for name, value in request.query():
        query[name] = f"{query[name]},{value}" if name in query else value
    body, encoded = _body(request)
    context: dict[str, Any] = {
        "accountId": account, "apiId": api.api_id, "domainName": request.host.split(":")[0],
        "domainPrefix": request.host.split(".")[0].split(":")[0],
        "http": {"method": request.method, "path": request.path, "protocol": "HTTP/1.1",
                 "sourceIp": request.source_ip, "userAgent": request.header("User-Agent") or ""},
        "requestId": request.request_id, "routeKey": route.key, "stage": api.stage,
        "time": datetime.fromtimestamp(request.received, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(request.received * 1000),
    }
    if authorizer is not None:
        context["authorizer"] = authorizer if "iam" in authorizer else {"jwt": authorizer}
    event: dict[str, Any] = {"version": "2.0", "routeKey": route.key, "rawPath": request.raw_path,
                             "rawQueryString": request.raw_query, "headers": headers, "requestContext": context,
                             "isBase64Encoded": encoded}
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if parameters:
        event["pathParameters"] = parameters
    if body is not None:
        event["body"] = body
    return event


def proxy_event_v1(api: Api, route: Route, request: Request, path: str, parameters: dict[str, str],
                   authorizer: dict[str, Any] | None, account: str) -> dict[str, Any]:
    """A REST API proxy event, or an HTTP API event in payload format 1.0 (its near twin)."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in _forwarded(request):
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in request.query():
        query[name] = value
        multi_query.setdefault(name, []).append(value)
    body, encoded = _body(request)
    resource = route.path if route.key != "$default" else "$default"
    received = datetime.fromtimestamp(request.received, UTC)
    context: dict[str, Any] = {
        "accountId": account, "apiId": api.api_id, "domainName": request.host.split(":")[0],
        "domainPrefix": request.host.split(".")[0].split(":")[0], "extendedRequestId": request.request_id,
        "httpMethod": request.method,
        "identity": {"accessKey": None, "accountId": None, "caller": None, "cognitoAuthenticationProvider": None,
                     "cognitoAuthenticationType": None, "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                     "principalOrgId": None, "sourceIp": request.source_ip, "user": None,
                     "userAgent": request.header("User-Agent") or "", "userArn": None},
        "path": request.path, "protocol": "HTTP/1.1", "requestId": request.request_id,
        "requestTime": received.strftime("%d/%b/%Y:%H:%M:%S +0000"), "requestTimeEpoch": int(request.received * 1000),
        "resourceId": route.resource_id or route.key, "resourcePath": resource, "stage": api.stage,
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    event: dict[str, Any] = {
        "resource": resource, "path": path, "httpMethod": request.method, "headers": headers,
        "multiValueHeaders": multi_headers, "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None, "pathParameters": parameters or None,
        "stageVariables": None, "requestContext": context, "body": body, "isBase64Encoded": encoded,
    }
    if api.kind == "http":
        event["version"] = "1.0"
        context["routeKey"] = route.key
    return event


#: Set by the gateway itself, whatever the function says.
_GATEWAY_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "date"})


def proxy_answer(result: Any, payload_version: str) -> Answer:
    """The HTTP answer for a function's proxy response (format 2.0 also takes any JSON as a 200 body)."""
    if payload_version == "2.0" and not (is_object(result) and "statusCode" in result):
        return Answer(200, [("Content-Type", "application/json")], json.dumps(result).encode()
                      if not isinstance(result, str) else result.encode())
    if not is_object(result) or not isinstance(result.get("statusCode"), int):
        raise ValueError("statusCode is missing or not a number")
    single: dict[str, Any] = result.get("headers") or {}
    multi: dict[str, list[Any]] = result.get("multiValueHeaders") or {}
    cookies: list[Any] = result.get("cookies") or []
    headers = [(str(k), str(v)) for k, v in single.items() if str(k).lower() not in _GATEWAY_HEADERS]
    seen = {k.lower() for k, _ in headers}
    for name, values in multi.items():
        if name.lower() not in seen and name.lower() not in _GATEWAY_HEADERS:
            headers += [(str(name), str(v)) for v in values]
    headers += [("Set-Cookie", str(c)) for c in cookies]
    body: Any = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    if payload_version == "2.0" and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return Answer(result["statusCode"], headers, data)
