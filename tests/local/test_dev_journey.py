"""As a developer running `make local`: the dev stack's template, served with its real bundles.

The dev environment synthesized for this machine, run by ``python -m cdk_app.local``: the
HTTP API's routes and JWT authorizer against the local user pool, the task API through the
real worker bundle on the SQS event source, a poison message dead-lettered after the queue's
maxReceiveCount, the S3 intake, every sample event through ``python -m cdk_app.invoke``; then
Ctrl+C leaves no process behind.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import boto3
import pytest

from cdk_app.local.aws import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from cdk_app.local.stack import read_state
from tests.local.conftest import EVENTS, REPO, RunningStack, call, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(dev_assembly):
    # Failed messages return after 1 s instead of the queue's 216 s visibility timeout.
    running = RunningStack(dev_assembly, "--sqs-retry-seconds", "1", "--max-instances", "2")
    yield running
    left = running.stop()
    assert not left, f"processes left behind: {left}\n{running.output()[-3000:]}"
    assert "local: stopping" in running.output()


@pytest.fixture(scope="module")
def tokens(stack) -> dict[str, str]:
    """``make token``'s exports, evaluated."""
    done = subprocess.run([sys.executable, "-m", "cdk_app.local.token", "--port", str(stack.port)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    exports = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in done.stdout.splitlines())
    assert set(exports) == {"API_URL", "ACCESS_TOKEN", "ID_TOKEN"}
    assert exports["API_URL"] == stack.url
    return exports


@pytest.fixture(scope="module")
def aws(stack):
    state = read_state(stack.port)
    assert state is not None
    return {service: boto3.client(service, endpoint_url=state["moto_endpoint"], region_name=state["region"],
                                  aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
            for service in ("sqs", "s3", "cognito-idp")}


def template(dev_assembly) -> dict:
    return json.loads((dev_assembly / "fastapi-lambda-dev.template.json").read_text())["Resources"]


def test_ready_line_is_printed_once_with_the_url(stack):
    ready = [line for line in stack.lines if line.startswith("local: ready ")]
    assert len(ready) == 1 and ready[0].startswith(f"local: ready http://127.0.0.1:{stack.port}")


def test_public_route_answers_without_a_token(stack):
    status, headers, body = call("GET", f"{stack.url}health")
    assert (status, body) == (200, {"status": "ok"})
    assert "apigw-requestid" in headers


def test_protected_route_refuses_a_missing_or_bad_token(stack):
    assert call("GET", f"{stack.url}me")[:3:2] == (401, {"message": "Unauthorized"})
    status, headers, _ = call("GET", f"{stack.url}me", token="not.a.jwt")
    assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"]


def test_an_id_token_is_refused_where_scopes_are_set(stack, tokens):
    # Every protected route carries scopes, which an ID token has none of. An HTTP API answers a valid
    # token without one of the route's scopes with 403 insufficient_scope (a REST API: 401).
    status, headers, body = call("GET", f"{stack.url}me", token=tokens["ID_TOKEN"])
    assert (status, body) == (403, {"message": "Forbidden"})
    assert 'error="insufficient_scope"' in headers["www-authenticate"]


def test_the_access_token_reaches_the_app_with_its_claims(stack, tokens):
    status, _, body = call("GET", f"{stack.url}me", token=tokens["ACCESS_TOKEN"])
    assert status == 200
    assert body["token_use"] == "access" and "api/tasks.write" in body["scopes"]


def test_posting_a_task_needs_the_scope_and_the_worker_bundle_runs_it(stack, tokens):
    task = {"type": "generate-report", "payload": {"name": "sales", "rows": 4}}
    without_scope = subprocess.run(
        [sys.executable, "-m", "cdk_app.local.token", "--port", str(stack.port), "--scope",
         "aws.cognito.signin.user.admin"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout
    plain = shlex.split(without_scope.splitlines()[1].removeprefix("export "))[0].split("=", 1)[1]
    status, headers, _ = call("POST", f"{stack.url}tasks", token=plain, body=task)
    assert status == 403 and 'scope="api/tasks.write"' in headers["www-authenticate"]

    status, headers, body = call("POST", f"{stack.url}tasks", token=tokens["ACCESS_TOKEN"], body=task)
    assert status == 202 and body["status"] == "queued"
    assert headers["location"] == f"/tasks/{body['id']}"
    done = wait_for(lambda: (found := call("GET", f"{stack.url}tasks/{body['id']}", token=tokens["ACCESS_TOKEN"])[2])
                    .get("status") in ("succeeded", "failed") and found, what="the task to finish")
    assert done["status"] == "succeeded" and done["result"] == {"report": "sales", "rows": 4, "total": 10}
    assert "Tasks/Worker#1 | REPORT RequestId:" in stack.output()


def test_a_poison_message_reaches_the_dead_letter_queue_after_max_receive_count(stack, aws, dev_assembly):
    resources = template(dev_assembly)
    (policy,) = [r["Properties"]["RedrivePolicy"] for r in resources.values()
                 if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r["Properties"]]
    urls = aws["sqs"].list_queues()["QueueUrls"]
    (queue,) = [u for u in urls if "TasksQueue" in u]
    (dead_letters,) = [u for u in urls if "DeadLetter" in u]
    aws["sqs"].send_message(QueueUrl=queue, MessageBody="not a task")

    def dead_lettered():
        return aws["sqs"].receive_message(QueueUrl=dead_letters, AttributeNames=["All"], WaitTimeSeconds=1
                                          ).get("Messages")

    (message,) = wait_for(dead_lettered, timeout=90, what="the poison message to be dead-lettered")
    assert message["Body"] == "not a task"
    # Received maxReceiveCount times from the task queue (each a failed batch), then once here.
    assert int(message["Attributes"]["ApproximateReceiveCount"]) == policy["maxReceiveCount"] + 1 == 4


def test_an_object_in_the_intake_bucket_becomes_a_result_through_the_notification(stack, aws):
    (bucket,) = [b["Name"] for b in aws["s3"].list_buckets()["Buckets"] if "filesbucket" in b["Name"]]
    aws["s3"].put_object(Bucket=bucket, Key="incoming/notes.txt", Body=b"one two\nthree\n")

    def result():
        try:
            return json.loads(aws["s3"].get_object(Bucket=bucket, Key="results/notes.txt.json")["Body"].read())
        except aws["s3"].exceptions.NoSuchKey:
            return None

    found = wait_for(result, what="the result object")
    assert {key: found[key] for key in ("bucket", "key", "bytes", "lines", "words")} == {
        "bucket": bucket, "key": "incoming/notes.txt", "bytes": 14, "lines": 3 - 1, "words": 3}


@pytest.mark.parametrize("event", sorted(p.name for p in EVENTS.glob("*.json")))
def test_every_sample_event_is_answered_by_the_running_stack(stack, dev_assembly, event):
    done = subprocess.run([sys.executable, "-m", "cdk_app.invoke", str(dev_assembly), str(EVENTS / event), "--port",
                           str(stack.port)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"of the stack running on port {stack.port}" in done.stderr
    answer = json.loads(done.stdout)
    if event in ("sqs_batch.json", "s3_notification.json"):
        assert "batchItemFailures" in answer
    elif event in ("warmup.json", "schedule.json"):
        assert answer["handled"] == event.removesuffix(".json")
    else:
        assert answer["statusCode"] == 200
