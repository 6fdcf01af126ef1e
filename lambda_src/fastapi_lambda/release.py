"""The smoke test CodeDeploy runs before (and optionally after) it shifts a ``live`` alias.

CodeDeploy invokes :func:`handler` with ``DeploymentId`` and ``LifecycleEventHookExecutionId``.
The hook reads the version being released from the deployment's AppSpec, invokes that version
with a GET request for ``SMOKE_TEST_PATH`` (an API Gateway HTTP API event, which the runtime's
dispatch serves like any other) or, without a path, a warmup ping, and reports ``Succeeded``
only when the version answered without a function error and, for a request, with a 2xx status.
It always reports: a hook that reports nothing holds the deployment until CodeDeploy's one-hour
timeout. No CDK here; boto3 is the Lambda runtime's own.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from fastapi_lambda.constants import SMOKE_TEST_FUNCTION_VARIABLE, SMOKE_TEST_PATH_VARIABLE, WARMUP_MARKER

logger = logging.getLogger(__name__)

#: Properties of the AppSpec's function resource, in its JSON or YAML form.
_APPSPEC_FIELD = r'["\']?{name}["\']?\s*:\s*["\']?([^"\'\s,}}]+)'


class CodeDeployClient(Protocol):
    def get_deployment(self, *, deploymentId: str) -> Mapping[str, Any]: ...  # noqa: N803 (boto3's names)

    def put_lifecycle_event_hook_execution_status(self, *, deploymentId: str,  # noqa: N803
                                                  lifecycleEventHookExecutionId: str,  # noqa: N803
                                                  status: str) -> Mapping[str, Any]: ...


class LambdaClient(Protocol):
    def invoke(self, *, FunctionName: str, Qualifier: str, Payload: bytes) -> Mapping[str, Any]: ...  # noqa: N803


@dataclass(frozen=True)
class Verdict:
    """Whether the new version passed, and why (logged, and returned to whoever invoked the hook)."""

    passed: bool
    reason: str

    @property
    def status(self) -> str:
        return "Succeeded" if self.passed else "Failed"


def request_event(path: str) -> dict[str, Any]:
    """A GET request for ``path`` as API Gateway's HTTP API (payload 2.0) sends it."""
    now = time.time()
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": "smoke-test.invalid", "user-agent": "codedeploy-smoke-test", "accept": "*/*"},
        "requestContext": {
            "accountId": "smoke-test", "apiId": "smoke-test", "domainName": "smoke-test.invalid",
            "domainPrefix": "smoke-test", "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "codedeploy-smoke-test"},
        },
        "isBase64Encoded": False,
    }


def warmup_event() -> dict[str, Any]:
    """A single warmup ping: the runtime answers it before the app, after the function's init."""
    return {WARMUP_MARKER: {"concurrency": 1, "hold_ms": 0}}


def smoke_event(path: str | None) -> dict[str, Any]:
    return request_event(path) if path else warmup_event()


def judge(payload: bytes, *, function_error: str | None, expects_http: bool) -> Verdict:
    """The new version's answer as a verdict: no function error, and a 2xx status for a request."""
    text = payload.decode("utf-8", "replace")
    if function_error:
        return Verdict(False, f"the new version failed ({function_error}): {text[:300]}")
    if not expects_http:
        return Verdict(True, "the new version initialized and answered a warmup ping")
    try:
        answer = json.loads(text)
    except ValueError:
        return Verdict(False, f"the new version's answer is not JSON: {text[:300]}")
    reply = cast("dict[str, Any]", answer) if isinstance(answer, dict) else {}
    status = reply.get("statusCode")
    if not isinstance(status, int) or isinstance(status, bool):
        return Verdict(False, f"the new version's answer has no HTTP status: {text[:300]}")
    if not 200 <= status < 300:
        return Verdict(False, f"the new version answered {status}: {str(reply.get('body', ''))[:300]}")
    return Verdict(True, f"the new version answered {status}")


def target_version(deployment: Mapping[str, Any]) -> str:
    """The version a Lambda deployment moves the alias to, from its AppSpec (JSON or YAML)."""
    revision: Mapping[str, Any] = deployment.get("revision") or {}
    spec: Mapping[str, Any] = revision.get("appSpecContent") or revision.get("string") or {}
    content: str = spec.get("content") or ""
    found = re.search(_APPSPEC_FIELD.format(name="TargetVersion"), content)
    if found is None:
        raise ValueError(f"the deployment's AppSpec names no TargetVersion: {content[:300]!r}")
    return found.group(1)


def run(event: Mapping[str, Any], *, codedeploy: CodeDeployClient, lambda_client: LambdaClient,
        function_name: str, path: str | None) -> Verdict:
    """Test the version the deployment releases and report the verdict to CodeDeploy (always)."""
    deployment_id = str(event.get("DeploymentId", ""))
    execution_id = str(event.get("LifecycleEventHookExecutionId", ""))
    if not deployment_id or not execution_id:
        raise ValueError("not a CodeDeploy lifecycle hook event: DeploymentId and LifecycleEventHookExecutionId "
                         f"are needed, got {sorted(event)}")
    try:
        version = target_version(codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"])
        answer = lambda_client.invoke(FunctionName=function_name, Qualifier=version,
                                      Payload=json.dumps(smoke_event(path)).encode())
        verdict = judge(answer["Payload"].read(), function_error=answer.get("FunctionError"),
                        expects_http=bool(path))
        verdict = Verdict(verdict.passed, f"{function_name}:{version} {path or 'warmup'}: {verdict.reason}")
    except Exception as error:  # the verdict must reach CodeDeploy whatever failed
        verdict = Verdict(False, f"the smoke test could not run: {type(error).__name__}: {error}")
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=verdict.status)
    (logger.info if verdict.passed else logger.error)("smoke test %s: %s", verdict.status, verdict.reason)
    return verdict


def handler(event: Mapping[str, Any], context: object = None) -> dict[str, str]:
    """CodeDeploy's BeforeAllowTraffic / AfterAllowTraffic hook."""
    import boto3  # pyright: ignore[reportMissingTypeStubs]  # the Lambda runtime's; imported here so the module loads without it

    codedeploy = cast("CodeDeployClient", boto3.client("codedeploy"))  # pyright: ignore[reportUnknownMemberType]
    lambda_client = cast("LambdaClient", boto3.client("lambda"))  # pyright: ignore[reportUnknownMemberType]
    verdict = run(event, codedeploy=codedeploy, lambda_client=lambda_client,
                  function_name=os.environ[SMOKE_TEST_FUNCTION_VARIABLE],
                  path=os.environ.get(SMOKE_TEST_PATH_VARIABLE) or None)
    return {"status": verdict.status, "reason": verdict.reason}
