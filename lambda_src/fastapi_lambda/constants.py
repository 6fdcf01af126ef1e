"""Values both sides need: the constructs (at synth) and the function (at run time).

Defined once here; ``cdk_app`` imports them, so a cap or a marker can never differ
between the rule that sends a ping and the handler that answers it.
"""

from __future__ import annotations

from typing import Literal

#: The key of a warmup ping's payload: ``{"fastapi-lambda-warmup": {"concurrency": N}}``.
WARMUP_MARKER = "fastapi-lambda-warmup"
#: Most instances one warmup ping may warm (the rule's setting and the handler's clamp).
MAX_WARMUP_CONCURRENCY = 50
#: How long a fanned-out ping stays busy so that concurrent pings land on distinct instances.
DEFAULT_HOLD_MS = 100
MAX_HOLD_MS = 1000

#: What the function builds at init: everything (``eager``) or only what every request needs.
ImportMode = Literal["eager", "lazy"]
IMPORT_MODE_VARIABLE = "IMPORT_MODE"
#: "on" keeps Python's garbage collector running during init; by default it is held until the handler
#: is built (``fastapi_lambda.lifecycle.hold_gc``).
INIT_GC_VARIABLE = "INIT_GC"

#: ``package.module:attribute`` of the ASGI app, for the generic entry point.
APP_VARIABLE = "FASTAPI_LAMBDA_APP"
GENERIC_HANDLER = "fastapi_lambda.entry.handler"

#: What this package needs at run time, per capability: fastapi_lambda.requirements.

# --- hostile input (fastapi_lambda.guard) ---------------------------------------------------------

#: "off" lets every request body through to the app unchecked (``lambda_handler(app, guard=False)`` too).
INPUT_GUARD_VARIABLE = "INPUT_GUARD"
#: The largest request body, in bytes (413 above it), and the deepest JSON nesting (400 below it).
MAX_BODY_BYTES_VARIABLE = "INPUT_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH_VARIABLE = "INPUT_MAX_JSON_DEPTH"
DEFAULT_MAX_JSON_DEPTH = 64

# --- background tasks (cdk_app.tasks sets these; fastapi_lambda.tasks reads them) ----------------

#: The queue tasks are sent to; unset means tasks run in-process (local development).
TASK_QUEUE_URL_VARIABLE = "TASK_QUEUE_URL"
#: The DynamoDB table of task statuses (idempotency and GET /tasks/{id}); unset means in memory.
TASK_TABLE_VARIABLE = "TASK_TABLE_NAME"
#: ``package.module:attribute`` of the task registry, for the generic entry point of a worker.
TASK_REGISTRY_VARIABLE = "FASTAPI_LAMBDA_TASKS"
#: The table's partition key (the task id) and its TTL attribute (epoch seconds).
TASK_TABLE_KEY = "id"
TASK_TABLE_TTL_ATTRIBUTE = "expires_at"
#: Objects created under this prefix of the files bucket become ``process-file`` tasks; results go under the other.
FILES_INCOMING_PREFIX = "incoming/"
FILES_RESULTS_PREFIX = "results/"
FILE_TASK_TYPE = "process-file"

# --- cache (cdk_app.cache sets these; fastapi_lambda.cache reads them) --------------------------

#: The cache endpoint's host; unset means the in-process TTL cache (local runs, no cache configured).
CACHE_HOST_VARIABLE = "CACHE_HOST"
CACHE_PORT_VARIABLE = "CACHE_PORT"
#: Which Secrets Manager secret holds the AUTH token: its ARN or name (never the token); unset: no password.
CACHE_SECRET_VARIABLE = "CACHE_SECRET_ID"
#: "cluster" (ElastiCache Serverless speaks the cluster protocol) or "standalone" (a replication group).
CACHE_MODE_VARIABLE = "CACHE_MODE"
CacheMode = Literal["cluster", "standalone"]
#: "false" turns TLS off, for a local Redis only: ElastiCache here always requires TLS.
CACHE_TLS_VARIABLE = "CACHE_TLS"
#: Time budgets of one cache call, in milliseconds: reaching the server (TCP and TLS), then one command.
CACHE_CONNECT_TIMEOUT_VARIABLE = "CACHE_CONNECT_TIMEOUT_MS"
CACHE_COMMAND_TIMEOUT_VARIABLE = "CACHE_COMMAND_TIMEOUT_MS"
DEFAULT_CACHE_CONNECT_TIMEOUT_MS = 100
DEFAULT_CACHE_COMMAND_TIMEOUT_MS = 50
#: The cache's errors, counted in METRICS_NAMESPACE (CloudWatch embedded metric format, in the logs).
CACHE_ERRORS_METRIC = "CacheErrors"

# --- identity (cdk_app.auth sets these; fastapi_lambda.auth reads them) ---------------------------

#: The token issuer, e.g. https://cognito-idp.<region>.amazonaws.com/<user pool id>.
AUTH_ISSUER_VARIABLE = "AUTH_ISSUER"
#: Where the signing keys are; default: the issuer's /.well-known/jwks.json (moto serves it elsewhere).
AUTH_JWKS_URL_VARIABLE = "AUTH_JWKS_URL"
#: Comma-separated app client ids whose tokens the API accepts.
AUTH_CLIENT_IDS_VARIABLE = "AUTH_CLIENT_IDS"
#: "true": verify the token in the function too (defense in depth), not only at the gateway.
AUTH_VERIFY_VARIABLE = "AUTH_VERIFY_TOKENS"
#: Which Cognito token the API accepts: "access" (the default; scopes, no ``aud``) or "id".
AUTH_TOKEN_USE_VARIABLE = "AUTH_TOKEN_USE"

#: The example app's resource server in the user pool, and its scope as tokens carry it
#: (``<identifier>/<name>``): ``POST /tasks`` requires it.
RESOURCE_SERVER_ID = "api"
TASKS_WRITE_SCOPE_NAME = "tasks.write"
TASKS_WRITE_SCOPE = f"{RESOURCE_SERVER_ID}/{TASKS_WRITE_SCOPE_NAME}"

# --- config, secrets and observability (cdk_app.app_config / observability set these) -------------

#: Non-secret parameters live under this SSM path (``/<app>/<env>/``), read by path and cached.
CONFIG_PATH_VARIABLE = "CONFIG_PARAMETER_PATH"
#: JSON object: setting name -> Secrets Manager secret name or ARN (names only, never values).
SECRETS_VARIABLE = "CONFIG_SECRETS"
#: JSON object: setting name -> name of an existing SecureString parameter.
SECURE_PARAMETERS_VARIABLE = "CONFIG_SECURE_PARAMETERS"
#: Seconds a read parameter or secret is trusted before it is read again.
CONFIG_MAX_AGE_VARIABLE = "CONFIG_MAX_AGE_SECONDS"
#: "xray" (default), "adot" (OpenTelemetry through the ADOT layer) or "off".
TRACING_VARIABLE = "TRACING_MODE"
#: Powertools' own variables, set on every function by the constructs.
SERVICE_NAME_VARIABLE = "POWERTOOLS_SERVICE_NAME"
METRICS_NAMESPACE_VARIABLE = "POWERTOOLS_METRICS_NAMESPACE"
#: The CloudWatch namespace of the application's own metrics (cold start, cache, tasks).
METRICS_NAMESPACE = "FastApiLambda"

# --- releases (fastapi_lambda.release, cdk_app.releases) -----------------------------------------------
#: The smoke-test hook's function to test (its new version comes from the CodeDeploy deployment).
SMOKE_TEST_FUNCTION_VARIABLE = "SMOKE_TEST_FUNCTION"
#: The GET path the hook sends to the new version; unset: a warmup ping (a function without HTTP routes).
SMOKE_TEST_PATH_VARIABLE = "SMOKE_TEST_PATH"
#: The hook's handler, in the runtime package (so every function's code asset already holds it).
SMOKE_TEST_HANDLER = "fastapi_lambda.release.handler"
# --- the HTTP edge (cdk_app.api sets these; fastapi_lambda.edge reads them) -----------------------

#: The path prefix clients reach this app under (a service's prefix, after a custom domain's base path),
#: e.g. "/billing": the app serves it as its ASGI ``root_path``, so its routes, /docs and /openapi.json
#: work below it. Unset: the app is served at the root.
ROOT_PATH_VARIABLE = "FASTAPI_LAMBDA_ROOT_PATH"
#: Answers of at least this many bytes are gzip-compressed for clients that accept it (HTTP APIs, which
#: cannot compress themselves; a REST API compresses at the gateway). Unset: no compression in the app.
GZIP_MIN_BYTES_VARIABLE = "FASTAPI_LAMBDA_GZIP_MIN_BYTES"
#: Presigned uploads (POST /uploads of the example app): the bucket, the key prefix the function may
#: write under, and the largest object a URL is signed for.
UPLOAD_BUCKET_VARIABLE = "UPLOAD_BUCKET"
UPLOAD_PREFIX_VARIABLE = "UPLOAD_PREFIX"
UPLOAD_MAX_BYTES_VARIABLE = "UPLOAD_MAX_BYTES"
DEFAULT_UPLOAD_MAX_BYTES = 100 * 1024 * 1024
