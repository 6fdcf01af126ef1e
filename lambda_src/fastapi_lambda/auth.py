"""Who is calling: FastAPI dependencies for Cognito tokens, verified at the gateway or here.

Behind API Gateway's JWT authorizer (HTTP API) or Cognito authorizer (REST API) the
token was verified before the function ran: :func:`current_user` takes its claims from
the request context. Everywhere else (local runs, a Function URL, a route without an
authorizer), and always when ``AUTH_VERIFY_TOKENS=true`` (defense in depth), it verifies
the ``Authorization: Bearer`` token itself with PyJWT against the issuer's JWKS: RS256
only, the issuer, ``token_use``, the app client, the expiry and a known ``kid``::

    @app.get("/orders/{id}")
    async def order(id: str, user: Annotated[User, Depends(current_user)]) -> dict: ...

    @app.post("/tasks", dependencies=[Depends(require_scopes(TASKS_WRITE_SCOPE))])

    async def me(request: Request) -> JSONResponse:  # a plain Starlette route: no FastAPI pipeline
        user = await current_user(request)

Tests may replace the caller with ``app.dependency_overrides[current_user] = ...``
(``require_scopes`` depends on it too).

A missing or bad token answers 401 with ``WWW-Authenticate: Bearer``, a missing scope
403; missing settings or signing keys that cannot be fetched answer 503 (the token may
be valid: a 401 would send the client to sign in again for an outage of ours). Never 500.
Settings are the ``AUTH_*`` variables of :mod:`fastapi_lambda.constants`. PyJWT and
cryptography load on the first verification (at init in eager mode, which also fetches
the JWKS when every request verifies).

Locally, ``make token`` (``python -m cdk_app.local.identity local-token``, a dev tool outside this
package) gets a token from moto's Cognito.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

from fastapi import Depends, HTTPException
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.requests import Request

from fastapi_lambda import lifecycle, observability
from fastapi_lambda.constants import (
    AUTH_CLIENT_IDS_VARIABLE,
    AUTH_ISSUER_VARIABLE,
    AUTH_JWKS_URL_VARIABLE,
    AUTH_TOKEN_USE_VARIABLE,
    AUTH_VERIFY_VARIABLE,
)
from fastapi_lambda.openapi import RETRY_AFTER, detail_response

if TYPE_CHECKING:
    from jwt import PyJWK

    from fastapi_lambda.shapes import JsonValue

logger = logging.getLogger(__name__)

#: How long fetched signing keys are used before they are fetched again (Cognito rarely rotates
#: them, and an unknown ``kid`` triggers a refresh anyway).
JWKS_TTL_S = 3600
#: The JWKS is fetched at most once per this many seconds, whatever asks (first use, TTL, unknown
#: ``kid``, a failed fetch): a flood of made-up ``kid`` values cannot hammer the endpoint.
JWKS_MIN_REFRESH_S = 30
#: A request waits at most this long for the JWKS.
JWKS_TIMEOUT_S = 2.0
#: Clock skew tolerated on ``exp``, ``iat`` and ``nbf``.
LEEWAY_S = 30
#: Cognito's tokens are about 1 KB; anything far longer is refused before it is parsed.
MAX_TOKEN_LENGTH = 8192
#: Seconds a client is told to wait after a 503.
RETRY_AFTER_S = 5
TOKEN_USES = ("access", "id")


class AuthConfigError(RuntimeError):
    """Settings needed to check this request are missing or wrong (the API answers 503)."""


class KeysUnavailable(RuntimeError):
    """No signing keys are known and the JWKS could not be fetched (the API answers 503)."""


class Refused(Exception):
    """A token that does not prove who is calling; ``reason`` is logged, ``description`` told."""

    def __init__(self, reason: str, description: str = "The token is not valid", *,
                 error: str | None = "invalid_token") -> None:
        super().__init__(reason)
        self.reason, self.description, self.error = reason, description, error


# NamedTuples, not dataclasses: a class is built at import, and these build in a tenth of the time.
class User(NamedTuple):
    """The caller, as a verified token names them.

    ``claims`` are as their source gave them: the gateway turns every value into text
    (``exp`` included); a token verified here keeps its JSON types. ``source`` is
    ``"gateway"`` or ``"token"``.
    """

    sub: str
    username: str | None
    scopes: frozenset[str]
    client_id: str | None
    token_use: str
    claims: Mapping[str, Any]
    source: str


class AuthSettings(NamedTuple):
    """The ``AUTH_*`` variables, read once per instance."""

    issuer: str | None
    jwks_url: str | None
    client_ids: frozenset[str]
    token_use: str
    verify: bool

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> AuthSettings:
        issuer = environ.get(AUTH_ISSUER_VARIABLE, "").strip().rstrip("/") or None
        jwks_url = environ.get(AUTH_JWKS_URL_VARIABLE, "").strip() or (issuer and f"{issuer}/.well-known/jwks.json")
        client_ids = frozenset(filter(None, (c.strip() for c in environ.get(AUTH_CLIENT_IDS_VARIABLE, "").split(","))))
        token_use = environ.get(AUTH_TOKEN_USE_VARIABLE, "").strip().lower() or "access"
        if token_use not in TOKEN_USES:
            raise AuthConfigError(f"{AUTH_TOKEN_USE_VARIABLE}={token_use!r} must be 'access' or 'id'")
        verify = environ.get(AUTH_VERIFY_VARIABLE, "").strip().lower() == "true"
        return cls(issuer, jwks_url, client_ids, token_use, verify)

    def require_verifiable(self) -> None:
        """Raise :class:`AuthConfigError` naming what is missing to verify a token here."""
        missing = [name for name, value in ((AUTH_ISSUER_VARIABLE, self.issuer),
                                            (AUTH_CLIENT_IDS_VARIABLE, self.client_ids)) if not value]
        if missing:
            raise AuthConfigError(f"verifying a token needs {' and '.join(missing)} (e.g. "
                                  f"{AUTH_ISSUER_VARIABLE}=https://cognito-idp.<region>.amazonaws.com/<user pool id>, "
                                  f"{AUTH_CLIENT_IDS_VARIABLE}=<app client id>,...)")


settings = lifecycle.per_instance(AuthSettings.from_environ)


# --- signing keys: PyJWT's JWKS client, refreshed at a bounded rate --------------------------------

class SigningKeys:
    """The issuer's RS256 public keys by ``kid``.

    Fetched on first use, again after ``ttl_s``, and once more when a token names an
    unknown ``kid`` (key rotation), but never more than once per ``min_refresh_s``.
    A failed refresh keeps the keys already known: an outage of the endpoint does not
    refuse tokens signed with them. Fetches block (urllib): on Lambda an instance serves
    one request at a time anyway.
    """

    def __init__(self, url: str, *, ttl_s: float = JWKS_TTL_S, min_refresh_s: float = JWKS_MIN_REFRESH_S,
                 timeout_s: float = JWKS_TIMEOUT_S) -> None:
        from jwt import PyJWKClient
        from jwt.algorithms import has_crypto

        if not has_crypto:
            raise ImportError("RS256 needs cryptography")
        # Its own cache is off: this class decides when to fetch, and keeps keys when a fetch fails.
        self.client = PyJWKClient(url, cache_jwk_set=False, timeout=timeout_s)
        self.url, self.ttl_s, self.min_refresh_s = url, ttl_s, min_refresh_s
        self.keys: dict[str | None, PyJWK] | None = None  # a key without a kid sits at None: no token names it
        self.fetched_at = self.attempted_at = -float("inf")

    def get(self, kid: str) -> PyJWK:
        """The ``PyJWK`` for ``kid``; :class:`Refused` if unknown, :class:`KeysUnavailable` if none are."""
        now = time.monotonic()
        if self.keys is None or now - self.fetched_at >= self.ttl_s or kid not in self.keys:
            self.refresh(now)
        if self.keys is None:
            raise KeysUnavailable(f"no signing keys could be fetched from {self.url}")
        key = self.keys.get(kid)
        if key is None:
            raise Refused(f"unknown kid {kid[:64]!r}")
        return key

    def refresh(self, now: float) -> None:
        if now - self.attempted_at < self.min_refresh_s:
            return
        self.attempted_at = now
        try:
            with observability.subsegment("## jwks.fetch"):
                keys = self.client.get_signing_keys()
        except Exception as error:  # PyJWT's connection, format and "no keys" errors alike
            logger.warning("Could not fetch the signing keys", extra={"jwks_url": self.url, "error": str(error)})
            return
        self.keys = {k.key_id: k for k in keys if k.algorithm_name == "RS256"}
        self.fetched_at = now


def _make_signing_keys() -> SigningKeys:
    config = settings.get()
    config.require_verifiable()
    try:
        keys = SigningKeys(config.jwks_url or "")
    except ImportError as error:
        raise AuthConfigError("verifying a token needs PyJWT with cryptography: add pyjwt[crypto] to the lock") from error
    if config.verify and lifecycle.import_mode() == "eager":  # every request will verify: fetch before traffic
        keys.refresh(time.monotonic())
    return keys


def _verifies_tokens() -> bool:
    return settings.get().verify


# Made at init in eager mode only where the function verifies tokens: behind the gateway's authorizer
# (verify off) PyJWT and cryptography stay unloaded, and need not be shipped.
signing_keys = lifecycle.per_instance(_make_signing_keys, eager=_verifies_tokens)


# --- the claims --------------------------------------------------------------------------------

def gateway_claims(event: Any) -> tuple[Mapping[str, Any], Any] | None:
    """The claims (and scopes) of the token API Gateway verified for this event; None if none was.

    HTTP API JWT authorizer: ``requestContext.authorizer.jwt.{claims,scopes}`` (payload 2.0)
    or ``requestContext.authorizer.{claims,scopes}`` (payload 1.0); REST API Cognito
    authorizer: ``requestContext.authorizer.claims``. Only API Gateway writes the request
    context: a caller cannot put claims there.
    """
    try:
        authorizer = event["requestContext"]["authorizer"]
        found = authorizer.get("jwt") if isinstance(authorizer.get("jwt"), dict) else authorizer
        if isinstance(found.get("claims"), dict):
            return found["claims"], found.get("scopes")
    except (KeyError, TypeError, AttributeError):
        pass
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _user(claims: Mapping[str, Any], scopes: JsonValue, config: AuthSettings, source: str) -> User:
    """The caller named by verified ``claims``, once they are for this API (:class:`Refused` if not)."""
    token_use, sub = claims.get("token_use"), _text(claims.get("sub"))
    if token_use != config.token_use:
        raise Refused(f"token_use {str(token_use)[:16]!r} where {config.token_use!r} is expected")
    if sub is None:
        raise Refused("no sub")
    if config.issuer and claims.get("iss") != config.issuer:  # the gateway's authorizer may trust another pool
        raise Refused(f"issuer {str(claims.get('iss'))[:200]!r}")
    # Cognito access tokens name their client in client_id and have no aud; ID tokens name it in aud.
    client_id = _text(claims.get("client_id") if token_use == "access" else claims.get("aud"))
    if config.client_ids and client_id not in config.client_ids:  # REST's Cognito authorizer checks no client
        raise Refused(f"client {str(client_id)[:128]!r} is not accepted")
    granted: set[str] = set(claims["scope"].split()) if isinstance(claims.get("scope"), str) else set()
    if isinstance(scopes, list):
        granted.update(s for s in scopes if isinstance(s, str))
    username = _text(claims.get("username")) or _text(claims.get("cognito:username"))
    # config.token_use: the value token_use was just found equal to, as the str it is
    return User(sub, username, frozenset(granted), client_id, config.token_use, claims, source)


def _unverified_header(token: str) -> dict[str, Any]:
    """The token's header, read only to choose the key; PyJWT reads and checks it all again.

    PyJWT's own ``get_unverified_header`` decodes every segment, character by character:
    a quarter of a verification.
    """
    segment = token.partition(".")[0]
    try:
        header: JsonValue = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:  # not base64, not UTF-8, not JSON
        raise Refused("malformed header") from None
    if not isinstance(header, dict):
        raise Refused("malformed header")
    return header


def verify_token(token: str, config: AuthSettings) -> dict[str, Any]:
    """The claims of ``token`` once its signature, issuer and times are checked; :class:`Refused` if not."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise Refused(f"{len(token)} characters long")
    keys = signing_keys.get()  # the first call imports PyJWT
    import jwt
    try:
        header = _unverified_header(token)
        # Checked before any key is looked up: only RS256 (never "none", never HS256 keyed with a
        # public key), and a kid, so a token that cannot be valid never makes us fetch the JWKS.
        if header.get("alg") != "RS256":
            raise Refused(f"alg {str(header.get('alg'))[:16]!r}")
        kid = _text(header.get("kid"))
        if kid is None:
            raise Refused("no kid")
        return jwt.decode(token, keys.get(kid), algorithms=["RS256"], issuer=config.issuer, leeway=LEEWAY_S,
                          options={"require": ["exp", "iat", "iss", "sub", "token_use"],
                                   "verify_aud": False})  # the client is checked in _user, for both token types
    except (Refused, KeysUnavailable):
        raise
    except jwt.ExpiredSignatureError:
        raise Refused("expired", "The token has expired") from None
    except jwt.PyJWTError as error:
        raise Refused(f"{type(error).__name__}: {error}") from None
    except Exception as error:  # whatever a crafted token makes a parser raise: refused, never a 500
        raise Refused(f"unreadable ({type(error).__name__})") from None


# --- the dependencies --------------------------------------------------------------------------

def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for none or another scheme."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if token and scheme.lower() == "bearer" else None


def _unauthorized(refused: Refused) -> HTTPException:
    # RFC 6750: no error code when the request carried no token at all.
    challenge = 'Bearer realm="api"'
    if refused.error:
        challenge += f', error="{refused.error}", error_description="{refused.description}"'
    return HTTPException(401, refused.description, headers={"WWW-Authenticate": challenge})


def _unavailable(detail: str) -> HTTPException:
    return HTTPException(503, detail, headers={"Retry-After": str(RETRY_AFTER_S)})


class CurrentUser(SecurityBase):
    """The verified caller: 401 if the request does not prove one, 503 if it cannot be checked now.

    A dependency (``Depends(current_user)``), or awaited in a plain Starlette route, which
    skips FastAPI's dependency machinery (about 15 µs per dependency on a warm request). A
    security scheme to FastAPI, so the routes that depend on it say so in the OpenAPI schema
    (HTTP bearer, a JWT).
    """

    def __init__(self) -> None:
        self.model = HTTPBearerModel(bearerFormat="JWT", description="An access token of the user pool")
        self.scheme_name = "bearerAuth"

    async def __call__(self, request: Request) -> User:
        try:
            config = settings.get()
            verified = None if config.verify else gateway_claims(request.scope.get("aws.event"))
            if verified is not None:
                return _user(*verified, config, "gateway")
            token = bearer_token(request.headers.get("authorization"))
            if token is None:
                raise Refused("no bearer token", "A bearer token is required", error=None)
            config.require_verifiable()
            return _user(verify_token(token, config), None, config, "token")
        except Refused as refused:
            # The reason only, never the token: it would let anyone who reads the logs replay it.
            log = logger.info if refused.error is None else logger.warning
            log("Refused a request's token", extra={"reason": refused.reason, "path": request.url.path})
            raise _unauthorized(refused) from None
        except AuthConfigError as error:
            logger.error("Authentication is not configured: %s", error)
            raise _unavailable("Authentication is not configured") from None
        except KeysUnavailable as error:
            logger.error("Cannot verify tokens: %s", error)
            raise _unavailable("Cannot verify tokens right now; try again later") from None


current_user = CurrentUser()

#: What a route that depends on :data:`current_user` may answer besides its own (``responses=``).
AUTH_RESPONSES = {
    401: detail_response("No valid token: missing, malformed, forged, expired or not for this API",
                         {"WWW-Authenticate": "The Bearer challenge (RFC 6750)"}),
    503: detail_response("Tokens cannot be checked right now (signing keys or settings unavailable)", RETRY_AFTER),
}
#: What :func:`require_scopes` adds.
SCOPE_RESPONSES = {403: detail_response("The token lacks a required scope",
                                        {"WWW-Authenticate": "The Bearer challenge, naming the scope"})}


def require_scopes(*scopes: str) -> Callable[..., Coroutine[Any, Any, User]]:
    """A dependency: the caller (as :func:`current_user`), with every one of ``scopes``; 403 if not."""
    required = frozenset(scopes)
    challenge = f'Bearer realm="api", error="insufficient_scope", scope="{" ".join(sorted(required))}"'

    async def with_scopes(user: Annotated[User, Depends(current_user)], request: Request) -> User:
        missing = required - user.scopes
        if missing:
            logger.info("Refused a request without a required scope",
                        extra={"missing": sorted(missing), "sub": user.sub, "path": request.url.path})
            raise HTTPException(403, "The token lacks a required scope", headers={"WWW-Authenticate": challenge})
        return user

    return with_scopes
