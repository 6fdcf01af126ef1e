"""The release smoke test (``fastapi_lambda.release``) against this repository's real handler.

CodeDeploy is the boundary we cannot run: its client is a real boto3 client with botocore's
Stubber, so every request the hook makes is checked against CodeDeploy's own API model. The
"new version" is the real ``service.handler.handler``, invoked in this process as Lambda would.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from typing import Any, cast

import boto3
import pytest
from botocore.stub import Stubber
from fastapi_lambda import release
from fastapi_lambda.constants import SMOKE_TEST_FUNCTION_VARIABLE, SMOKE_TEST_PATH_VARIABLE

FUNCTION = "fastapi-lambda-dev-ApiFunction"
HOOK_EVENT = {"DeploymentId": "d-ABCDEFGH1", "LifecycleEventHookExecutionId": "eyJleGVjdXRpb24iOiIxIn0="}
JSON_APPSPEC = json.dumps({"version": 0.0, "Resources": [{"ApiFunction": {"Type": "AWS::Lambda::Function",
                                                                          "Properties": {"Name": FUNCTION,
                                                                                         "Alias": "live",
                                                                                         "CurrentVersion": "7",
                                                                                         "TargetVersion": "8"}}}]})
YAML_APPSPEC = (f"version: 0.0\nResources:\n  - ApiFunction:\n      Type: AWS::Lambda::Function\n      Properties:\n"
                f"        Name: {FUNCTION}\n        Alias: live\n        CurrentVersion: '7'\n        TargetVersion: '8'\n")


class InProcessLambda:
    """Lambda's Invoke, served by a handler in this process: what the hook sees of the new version."""

    def __init__(self, handler: Callable[[dict, Any], Any], context: Any) -> None:
        self.handler, self.context, self.calls = handler, context, []

    def invoke(self, *, FunctionName: str, Qualifier: str, Payload: bytes) -> Mapping[str, Any]:  # noqa: N803
        self.calls.append((FunctionName, Qualifier))
        try:
            result, error = self.handler(json.loads(Payload), self.context), None
        except Exception as failure:  # Lambda reports an unhandled error as a 200 with FunctionError
            result, error = {"errorMessage": str(failure), "errorType": type(failure).__name__}, "Unhandled"
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(result).encode()),
                **({"FunctionError": error} if error else {})}


@pytest.fixture
def codedeploy():
    client = boto3.client("codedeploy", region_name="eu-west-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect(stubber: Stubber, status: str, appspec: str | None = JSON_APPSPEC) -> None:
    """The deployment the hook reads, then the one status it must report."""
    if appspec is None:
        stubber.add_client_error("get_deployment", "DeploymentDoesNotExistException", "no such deployment",
                                 expected_params={"deploymentId": HOOK_EVENT["DeploymentId"]})
    else:
        stubber.add_response("get_deployment", {"deploymentInfo": {
            "deploymentId": HOOK_EVENT["DeploymentId"], "computePlatform": "Lambda",
            "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec}}}},
            {"deploymentId": HOOK_EVENT["DeploymentId"]})
    stubber.add_response("put_lifecycle_event_hook_execution_status",
                         {"lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"]},
                         {"deploymentId": HOOK_EVENT["DeploymentId"], "status": status,
                          "lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"]})


@pytest.fixture
def new_version(lambda_context):
    from service.handler import handler

    return InProcessLambda(handler, lambda_context)


def test_a_healthy_version_passes_and_the_target_version_is_invoked(codedeploy, new_version):
    client, stubber = codedeploy
    expect(stubber, "Succeeded")

    verdict = release.run(HOOK_EVENT, codedeploy=client, lambda_client=new_version, function_name=FUNCTION,
                          path="/health")

    assert verdict.passed, verdict.reason
    assert new_version.calls == [(FUNCTION, "8")]
    assert "answered 200" in verdict.reason


def test_a_yaml_appspec_names_the_version_too(codedeploy, new_version):
    client, stubber = codedeploy
    expect(stubber, "Succeeded", YAML_APPSPEC)

    release.run(HOOK_EVENT, codedeploy=client, lambda_client=new_version, function_name=FUNCTION, path="/health")

    assert new_version.calls == [(FUNCTION, "8")]


def test_a_non_2xx_answer_fails_the_release(codedeploy, new_version):
    client, stubber = codedeploy
    expect(stubber, "Failed")

    verdict = release.run(HOOK_EVENT, codedeploy=client, lambda_client=new_version, function_name=FUNCTION,
                          path="/no-such-route")

    assert not verdict.passed and "answered 404" in verdict.reason


def test_an_app_that_breaks_fails_the_release(codedeploy, lambda_context):
    client, stubber = codedeploy
    expect(stubber, "Failed")
    from fastapi import FastAPI
    from fastapi_lambda import lambda_handler

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict:
        raise RuntimeError("the new code is broken")

    broken = InProcessLambda(lambda_handler(app), lambda_context)
    verdict = release.run(HOOK_EVENT, codedeploy=client, lambda_client=broken, function_name=FUNCTION, path="/health")

    assert not verdict.passed and "answered 500" in verdict.reason


def test_a_version_that_cannot_start_fails_the_release(codedeploy, lambda_context):
    client, stubber = codedeploy
    expect(stubber, "Failed")

    def crashes(event, context):
        raise ImportError("No module named 'orders'")

    verdict = release.run(HOOK_EVENT, codedeploy=client, lambda_client=InProcessLambda(crashes, lambda_context),
                          function_name=FUNCTION, path="/health")

    assert not verdict.passed and "Unhandled" in verdict.reason and "orders" in verdict.reason


def test_without_a_path_a_warmup_ping_tests_the_version(codedeploy, new_version):
    client, stubber = codedeploy
    expect(stubber, "Succeeded")

    verdict = release.run(HOOK_EVENT, codedeploy=client, lambda_client=new_version, function_name=FUNCTION,
                          path=None)

    assert verdict.passed and "warmup" in verdict.reason


def test_the_verdict_reaches_codedeploy_even_when_the_deployment_cannot_be_read(codedeploy, new_version):
    client, stubber = codedeploy
    expect(stubber, "Failed", appspec=None)

    verdict = release.run(HOOK_EVENT, codedeploy=client, lambda_client=new_version, function_name=FUNCTION,
                          path="/health")

    assert not verdict.passed and "DeploymentDoesNotExistException" in verdict.reason
    assert new_version.calls == []


def test_an_appspec_without_a_target_version_fails(codedeploy, new_version):
    client, stubber = codedeploy
    expect(stubber, "Failed", appspec='{"version": 0.0, "Resources": []}')

    verdict = release.run(HOOK_EVENT, codedeploy=client, lambda_client=new_version, function_name=FUNCTION,
                          path="/health")

    assert not verdict.passed and "TargetVersion" in verdict.reason


def test_an_event_that_is_not_a_hook_is_refused(new_version):
    with pytest.raises(ValueError, match="DeploymentId and LifecycleEventHookExecutionId"):
        release.run({"hello": "world"}, codedeploy=cast("release.CodeDeployClient", None), lambda_client=new_version, function_name=FUNCTION,
                    path="/health")


def test_the_lambda_entry_point_reads_its_settings_from_the_environment(monkeypatch, new_version):
    seen = {}

    def run(event, **kwargs):
        seen.update(kwargs)
        return release.Verdict(True, "ok")

    monkeypatch.setenv(SMOKE_TEST_FUNCTION_VARIABLE, FUNCTION)
    monkeypatch.setenv(SMOKE_TEST_PATH_VARIABLE, "/health")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setattr(release, "run", run)

    assert release.handler(HOOK_EVENT) == {"status": "Succeeded", "reason": "ok"}
    assert seen["function_name"] == FUNCTION and seen["path"] == "/health"
