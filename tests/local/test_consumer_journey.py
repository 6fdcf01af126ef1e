"""As a team that imports our constructs: examples/consumer, synthesized by its own app, run locally.

Its API's declared public route answers anyone; every other route needs a SigV4 signature (IAM),
here one made with the local credentials. The warmup ping fans out to a second instance through
the local Lambda API, an event with no handler fails the function, and ``python -m
cdk_app.invoke`` also works with no stack running. Ctrl+C leaves no process behind.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cdk_app.local.aws import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from tests.local.conftest import EVENTS, REPO, RunningStack, call

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(consumer_assembly):
    running = RunningStack(consumer_assembly, "--max-instances", "2")
    yield running
    left = running.stop()
    assert not left, f"processes left behind: {left}\n{running.output()[-3000:]}"


def signed(method: str, url: str, body: object = None, *, secret: str = SECRET_ACCESS_KEY) -> dict[str, str]:
    """The headers of a SigV4 signature (execute-api) over the request ``call`` will send."""
    data = json.dumps(body).encode() if body is not None else None
    request = AWSRequest(method=method, url=url, data=data,
                         headers={"Content-Type": "application/json"} if data is not None else {})
    SigV4Auth(Credentials(ACCESS_KEY_ID, secret), "execute-api", "us-east-1").add_auth(request)
    return dict(request.headers)


def invoke(assembly, event, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cdk_app.invoke", str(assembly), str(event), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=180)


def test_the_declared_public_route_answers_anyone(stack):
    assert call("GET", f"{stack.url}health")[::2] == (200, {"status": "ok", "service": "orders"})


def test_every_other_route_needs_a_signature(stack):
    assert call("GET", f"{stack.url}orders/1")[::2] == (403, {"message": "Forbidden"})
    url = f"{stack.url}orders/1"
    status, _, body = call("GET", url, headers=signed("GET", url, secret="not-the-secret"))
    assert status == 403 and body["message"].startswith("The request signature we calculated does not match")


def test_a_signed_request_reaches_the_app(stack):
    url = f"{stack.url}orders/1"
    assert call("GET", url, headers=signed("GET", url))[::2] == (200, {"id": 1, "item": "book", "quantity": 2})
    order = {"item": "pen", "quantity": 3}
    status, _, body = call("POST", f"{stack.url}orders", body=order, headers=signed("POST", f"{stack.url}orders",
                                                                                     order))
    assert status == 201 and body["item"] == "pen"


def test_the_warmup_fan_out_reaches_a_second_instance_through_the_local_lambda_api(stack, consumer_assembly,
                                                                                  tmp_path):
    ping = tmp_path / "ping.json"
    ping.write_text(json.dumps({"fastapi-lambda-warmup": {"concurrency": 2}}))
    done = invoke(consumer_assembly, ping, "--function", "Orders", "--port", str(stack.port))
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["handled"] == "warmup" and answer["instances"] == 2 and answer["failed"] == 0


def test_an_event_nothing_handles_is_a_function_error(stack, consumer_assembly):
    done = invoke(consumer_assembly, EVENTS / "sqs_batch.json", "--function", "Orders", "--port", str(stack.port))
    assert done.returncode == 1
    assert json.loads(done.stdout)["errorType"] == "RuntimeError"


def test_invoke_runs_the_bundle_without_a_running_stack(consumer_assembly):
    done = invoke(consumer_assembly, EVENTS / "http_api_v2.json", "--function", "Admin", "--port", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "with a local AWS for this invocation" in done.stderr
    assert json.loads(json.loads(done.stdout)["body"]) == {"status": "ok", "service": "orders"}
    assert "Init Duration:" in done.stderr
