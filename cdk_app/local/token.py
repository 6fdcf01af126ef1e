"""``python -m cdk_app.local.token``: tokens of the running local stack's test user, as shell exports.

``eval "$(python -m cdk_app.local.token)"`` (``make token``) sets ``API_URL``, ``ACCESS_TOKEN``
(every scope the app client may grant) and ``ID_TOKEN``, signed in against the local user pool
of the stack ``python -m cdk_app.local`` serves on ``--port`` (``LOCAL_PORT``, 3000).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient  # types only (requirements-dev.txt)


def sign_in(state: dict[str, Any], *, scopes: list[str] | None = None) -> dict[str, str]:
    """The test user's access token (with ``scopes``, default all of its client's) and ID token."""
    import boto3

    from cdk_app.local.aws import ACCESS_KEY_ID, SECRET_ACCESS_KEY
    from cdk_app.local.identity import answered, moto_token_with_scopes

    if not state.get("identities") or not state.get("user"):
        raise SystemExit(f"local: {state['stack']} has no user pool, so there is no token to get")
    identity = next(iter(state["identities"].values()))
    clients = list(identity["clients"].values())
    client = next((c for c in clients if not c["secret"]), None)
    if client is None:
        raise SystemExit("local: every app client of the user pool has a secret; a user signs in through one without")
    cognito: CognitoIdentityProviderClient = boto3.client("cognito-idp", endpoint_url=state["moto_endpoint"], region_name=state["region"],
                           aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
    tokens = cognito.initiate_auth(ClientId=client["id"], AuthFlow="USER_PASSWORD_AUTH", AuthParameters={
        "USERNAME": identity["username"], "PASSWORD": state["user"]["password"]})["AuthenticationResult"]
    # moto grants no OAuth scopes (it has no authorization-code flow): the token gets them re-signed with
    # the key moto signs with, which the local pool's JWKS publishes.
    wanted = client["scopes"] if scopes is None else scopes
    access_token = answered(tokens.get("AccessToken"), "an access token")
    return {"access_token": moto_token_with_scopes(access_token, wanted) if wanted else access_token,
            "id_token": answered(tokens.get("IdToken"), "an ID token")}


def main(argv: list[str] | None = None) -> int:
    from cdk_app.local.stack import read_state

    parser = argparse.ArgumentParser(prog="python -m cdk_app.local.token", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_PORT") or 3000),
                        help="the port the local stack serves on (default: LOCAL_PORT or 3000)")
    parser.add_argument("--scope", action="append", dest="scopes",
                        help="only this scope in the access token (repeatable; default: all of the client's)")
    args = parser.parse_args(argv)
    state = read_state(args.port)
    if state is None:
        print(f"local: no local stack serves on port {args.port}; start one with `make local` "
              "(or python -m cdk_app.local <cdk.out> <stack>)", file=sys.stderr)
        return 1
    tokens = sign_in(state, scopes=args.scopes)
    print(f"export API_URL={shlex.quote(state['api_url'])}")
    print(f"export ACCESS_TOKEN={shlex.quote(tokens['access_token'])}")
    print(f"export ID_TOKEN={shlex.quote(tokens['id_token'])}")
    print(f"# {state['user']['email']} of {state['stack']}; e.g. curl -H \"Authorization: Bearer $ACCESS_TOKEN\" "
          f"\"${{API_URL}}me\"", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
