"""Lambda inputs for the benchmark: API Gateway HTTP API (payload 2.0) events, a warmup
ping (the marker the schedule sends), an SQS batch of tasks and a context invoked
through the `live` alias.

Loaded by the child processes from its file path (not from sys.path), so the
measured interpreter's sys.path stays exactly the Lambda layout.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field


def http_api_event(method: str = "GET", path: str = "/", query: str = "") -> dict:
    """An HTTP API v2.0 event as API Gateway sends it for the `$default` route."""
    now = time.time()
    request_id = "bench-" + uuid.uuid4().hex[:12]
    user_agent = "Mozilla/5.0 (bench) curl/8.5.0"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "accept": "application/json, */*", "host": "abc123xyz.execute-api.us-east-1.amazonaws.com",
            "user-agent": user_agent, "x-forwarded-for": "203.0.113.10", "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123xyz",
            "domainName": "abc123xyz.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123xyz",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": user_agent},
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


#: The identity the bench's tokens and gateway claims carry (the parent sets the matching AUTH_* variables).
BENCH_ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Bench"
BENCH_CLIENT_ID = "benchclient"


def with_gateway_claims(event: dict, *scopes: str) -> dict:
    """``event`` as the HTTP API's JWT authorizer passes it on: the claims it verified, no token."""
    event["requestContext"]["authorizer"] = {"jwt": {"claims": {
        "sub": "bench-user", "iss": BENCH_ISSUER, "client_id": BENCH_CLIENT_ID, "token_use": "access",
        "scope": " ".join(scopes), "username": "bench-user", "exp": "4102444800", "iat": "1764291500"},
        "scopes": list(scopes)}}
    return event


def me_with_gateway_claims() -> dict:
    return with_gateway_claims(http_api_event("GET", "/me"), "openid")


def me_with_token() -> dict:
    """``GET /me`` with the bearer token the parent signed (verifying mode checks it in the function)."""
    event = http_api_event("GET", "/me")
    event["headers"]["authorization"] = f"Bearer {os.environ['BENCH_TOKEN']}"
    return event


def post_task_event() -> dict:
    """``POST /tasks`` with a small, valid task: the API records it and sends it to the queue."""
    event = http_api_event("POST", "/tasks")
    event["headers"]["content-type"] = "application/json"
    event["body"] = json.dumps({"type": "generate-report", "payload": {"name": "bench", "rows": 10}})
    return with_gateway_claims(event, "api/tasks.write")


def post_order_event() -> dict:
    """``POST /orders`` of the consumer example: a small JSON body, validated, answered 201 (no AWS call)."""
    event = http_api_event("POST", "/orders")
    event["headers"]["content-type"] = "application/json"
    event["body"] = json.dumps({"item": "book", "quantity": 2})
    return event


def sqs_batch(size: int = 10) -> dict:
    """An SQS event source mapping's batch of ``size`` new tasks (fresh ids: none was done before)."""
    now = int(time.time() * 1000)
    records = []
    for _ in range(size):
        envelope = {"id": uuid.uuid4().hex, "type": "generate-report", "payload": {"name": "bench", "rows": 10},
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "trace_header": None}
        records.append({
            "messageId": str(uuid.uuid4()), "receiptHandle": "bench-" + uuid.uuid4().hex, "body": json.dumps(envelope),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(now), "SenderId": "BENCH",
                           "ApproximateFirstReceiveTimestamp": str(now)},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-tasks", "awsRegion": "us-east-1"})
    return {"Records": records}


#: Events a scenario can ask the child for, by name.
EVENTS = {
    "GET /me, gateway claims": me_with_gateway_claims,
    "GET /me, verified token": me_with_token,
    "GET /": lambda: http_api_event("GET", "/"),
    "POST /tasks": post_task_event,
    "POST /orders": post_order_event,
    # Concurrency 1: answered in place, no fan-out (which would invoke the alias through boto3).
    "warmup ping": lambda: {"fastapi-lambda-warmup": {"concurrency": 1}},
}


@dataclass
class LambdaContext:
    """The attributes of the Python runtime's context object that handlers read."""

    function_name: str = "fastapi-bench"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fastapi-bench:live"  # via the alias
    log_group_name: str = "/aws/lambda/fastapi-bench"
    log_stream_name: str = "2025/01/01/[$LATEST]0123456789abcdef0123456789abcdef"
    deadline_ms: int = field(default_factory=lambda: int(time.time() * 1000) + 30_000)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))
