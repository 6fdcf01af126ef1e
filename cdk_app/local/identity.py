"""A token for local runs, from moto's Cognito: a dev tool, never part of a Lambda bundle.

``python -m cdk_app.local.identity local-token`` (``make token``) creates a user pool, an app
client and a confirmed user on a moto server, signs in and prints the ``AUTH_*`` exports that
``make serve`` needs to verify the token, and ``TOKEN``. The helpers are for tests and the local
stack too: :func:`create_local_identity`, :func:`moto_signed` (claims signed with moto's published
test key, which its JWKS serves) and :func:`moto_token_with_scopes`.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient  # types only (requirements-dev.txt)

from fastapi_lambda.constants import AUTH_CLIENT_IDS_VARIABLE, AUTH_ISSUER_VARIABLE, AUTH_JWKS_URL_VARIABLE

LOCAL_EMAIL = "dev@example.com"
LOCAL_PASSWORD = "Local-dev-Passw0rd!"  # a test user's, on a throwaway moto server


def create_local_identity(endpoint: str, *, email: str = LOCAL_EMAIL, password: str = LOCAL_PASSWORD,
                          region: str = "us-east-1") -> dict[str, str]:
    """A user pool with email sign-in, an app client and a confirmed user on the moto server at
    ``endpoint``; the settings to verify their tokens, and the tokens of a USER_PASSWORD_AUTH sign-in."""
    import boto3

    cognito: CognitoIdentityProviderClient = boto3.client("cognito-idp", endpoint_url=endpoint, region_name=region,
                           aws_access_key_id="testing", aws_secret_access_key="testing")  # moto takes any
    pool_id = answered(cognito.create_user_pool(PoolName="local", UsernameAttributes=["email"])["UserPool"].get("Id"),
                       "a user pool id")
    client_id = answered(cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="local", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"].get("ClientId"), "an app client id")
    cognito.admin_create_user(UserPoolId=pool_id, Username=email, MessageAction="SUPPRESS",
                              UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}])
    cognito.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
    tokens = cognito.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                                   AuthParameters={"USERNAME": email, "PASSWORD": password})["AuthenticationResult"]
    return {
        AUTH_ISSUER_VARIABLE: f"https://cognito-idp.{region}.amazonaws.com/{pool_id}",  # moto's iss: the AWS URL
        AUTH_JWKS_URL_VARIABLE: f"{endpoint}/{pool_id}/.well-known/jwks.json",  # moto serves the keys here
        AUTH_CLIENT_IDS_VARIABLE: client_id,
        "pool_id": pool_id, "access_token": answered(tokens.get("AccessToken"), "an access token"),
        "id_token": answered(tokens.get("IdToken"), "an ID token"),
    }


def answered(value: str | None, what: str) -> str:
    """A value Cognito's answer may leave out (its types say so) but moto always sends."""
    if value is None:
        raise RuntimeError(f"moto's Cognito answered without {what}")
    return value


def moto_signed(claims: Mapping[str, Any]) -> str:
    """``claims`` signed as moto's Cognito signs its tokens: with its published test key.

    Only moto's JWKS vouches for such a token. moto issues nothing but
    ``aws.cognito.signin.user.admin`` (it has no OAuth flows), so this is the way to a local
    token with resource-server scopes, or with claims moto would never write.
    """
    import jwt

    key = _moto_key()
    return jwt.encode(dict(claims), key, algorithm="RS256", headers={"kid": key.key_id})


@functools.cache
def _moto_key() -> Any:
    """moto's published private key (a third of a second to load and check: once per process)."""
    import jwt
    from moto.utilities.utils import load_resource

    return jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json"))


def moto_token_with_scopes(token: str, scopes: list[str]) -> str:
    """A token moto issued, with ``scopes`` added (see :func:`moto_signed`)."""
    import jwt

    claims = jwt.decode(token, options={"verify_signature": False})
    granted = claims.get("scope", "").split()
    return moto_signed({**claims, "scope": " ".join([*granted, *(s for s in scopes if s not in granted)])})


def main(argv: list[str] | None = None) -> int:
    """``python -m cdk_app.local.identity local-token``: see ``--help``."""
    import argparse
    import shlex

    parser = argparse.ArgumentParser(prog="python -m cdk_app.local.identity")
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser(
        "local-token", help="a test user's access token from moto's Cognito, and the settings to verify it",
        description="Creates a user pool, an app client and a user on a moto server, signs in (USER_PASSWORD_AUTH) "
                    "and prints shell exports: the AUTH_* settings for `make serve` and TOKEN. Without --endpoint "
                    "it starts moto here and keeps it running (the keys are served while it runs) until Ctrl+C.")
    local.add_argument("--endpoint", help="a running moto server, e.g. http://127.0.0.1:5000 (then exits)")
    local.add_argument("--port", type=int, default=0, help="the port of the moto server started here (default: free)")
    local.add_argument("--email", default=LOCAL_EMAIL)
    local.add_argument("--password", default=LOCAL_PASSWORD)
    local.add_argument("--scope", action="append", default=[],
                       help="add a scope, e.g. api/tasks.write (repeatable; re-signed with moto's test key)")
    args = parser.parse_args(argv)

    server = None
    endpoint = args.endpoint
    if endpoint is None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
    identity = create_local_identity(endpoint.rstrip("/"), email=args.email, password=args.password)
    token = moto_token_with_scopes(identity["access_token"], args.scope) if args.scope else identity["access_token"]
    for name in (AUTH_ISSUER_VARIABLE, AUTH_JWKS_URL_VARIABLE, AUTH_CLIENT_IDS_VARIABLE):
        print(f"export {name}={shlex.quote(identity[name])}")
    print(f"export TOKEN={shlex.quote(token)}", flush=True)
    print(f"# {args.email} in {identity['pool_id']} on {endpoint}. In a shell with these exports: make serve, then\n"
          '#   curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/me', file=sys.stderr)
    if server is None:
        return 0
    print("# moto keeps serving the signing keys until Ctrl+C", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
