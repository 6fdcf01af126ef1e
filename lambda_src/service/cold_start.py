"""Cold-start control inside the function: import mode, warmup answers, SnapStart hooks.

- ``IMPORT_MODE`` (set by the stack from the cold-start strategy): ``eager`` where init
  is paid before traffic (provisioned concurrency, SnapStart) loads and builds
  everything at init; ``lazy`` (warmup, none) defers rarely used modules to first use.
- A warmup marker is answered here, before Mangum and FastAPI. With a concurrency N > 1
  the first invocation invokes its own alias N-1 more times at once; each of those
  holds briefly so that they land on distinct instances, and never fans out again.
- Under SnapStart, the after-restore hook replaces what must not be shared between
  restored copies of one snapshot: network clients, the random seed, the instance id.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from typing import Any

logger = logging.getLogger(__name__)

WARMUP_MARKER = "fastapi-lambda-warmup"
MAX_CONCURRENCY = 50
DEFAULT_HOLD_MS = 100
MAX_HOLD_MS = 1000

#: Identifies this execution environment in warmup answers; new after every restore.
instance_id = uuid.uuid4().hex
_lambda_client: Any = None


def import_mode() -> str:
    return "eager" if os.environ.get("IMPORT_MODE", "lazy") == "eager" else "lazy"


def lambda_client() -> Any:
    """The Lambda client for fan-out, created on first use (boto3 is the runtime's)."""
    global _lambda_client
    if _lambda_client is None:
        import boto3
        from botocore.config import Config

        # One attempt: a warmup that fails is not worth a retry; short connect, read > hold.
        config = Config(connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 1})
        _lambda_client = boto3.client("lambda", config=config)
    return _lambda_client


def prepare(app: Any) -> None:
    """Do at init what the import mode asks for (called once by the handler module)."""
    register_snapstart_hooks()
    if import_mode() != "eager":
        return
    lambda_client()
    # Starlette builds its middleware stack on the first request, FastAPI its OpenAPI
    # schema on the first /openapi.json: both happen here instead, before traffic.
    app.middleware_stack = app.build_middleware_stack()
    app.openapi()


def after_restore() -> None:
    """Run by the Lambda runtime after a SnapStart restore."""
    global _lambda_client, instance_id
    _lambda_client = None  # its connections belong to the environment that took the snapshot
    random.seed()  # every restored copy would otherwise draw the same numbers
    instance_id = uuid.uuid4().hex
    if import_mode() == "eager":
        lambda_client()


def register_snapstart_hooks() -> bool:
    """Register :func:`after_restore` where the runtime offers hooks (Python 3.12+ on Lambda)."""
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:  # not on Lambda (local runs, tests without the package)
        return False
    register_after_restore(after_restore)
    return True


def _bounded(value: Any, default: int, lower: int, upper: int) -> int:
    try:
        return max(lower, min(int(value), upper))
    except (TypeError, ValueError):
        return default


def answer_warmup(request: Any, context: Any, client: Any = None) -> dict[str, Any]:
    """Answer a warmup marker; fan out to N-1 more instances when asked to.

    ``client`` is a Lambda client (boto3's by default); the response names how many
    distinct instances answered, this one included.
    """
    request = request if isinstance(request, dict) else {}
    concurrency = _bounded(request.get("concurrency", 1), 1, 1, MAX_CONCURRENCY)
    if concurrency == 1 and not request.get("fanned_out"):  # the every-few-minutes case: keep it cheap
        return {"warmed": True, "instance": instance_id, "instances": 1}
    hold_ms = _bounded(request.get("hold_ms", DEFAULT_HOLD_MS), DEFAULT_HOLD_MS, 0, MAX_HOLD_MS)
    if request.get("fanned_out"):
        time.sleep(hold_ms / 1000)  # stay busy so concurrent pings cannot share this instance
        return {"warmed": True, "instance": instance_id}
    target = getattr(context, "invoked_function_arn", "") or ""
    if target.count(":") != 7 or target.endswith(":$LATEST"):  # fan-out may only target an alias
        logger.warning("Warmup fan-out skipped: invoked without an alias", extra={"target": target})
        return {"warmed": True, "instance": instance_id, "instances": 1, "requested": concurrency}
    return _fan_out(target, concurrency, hold_ms, client or lambda_client())


def _fan_out(target: str, concurrency: int, hold_ms: int, client: Any) -> dict[str, Any]:
    # Imported here: fan-out is rare, and its thread pool module is the one import this
    # module would otherwise add to every cold start (~1 ms).
    from concurrent.futures import ThreadPoolExecutor

    payload = json.dumps({WARMUP_MARKER: {"fanned_out": True, "hold_ms": hold_ms}}).encode()

    def invoke(_: int) -> str | None:
        try:
            response = client.invoke(FunctionName=target, InvocationType="RequestResponse", Payload=payload)
            return json.loads(response["Payload"].read()).get("instance")
        except Exception:  # a failed ping must not fail the others, nor raise
            logger.warning("Warmup invocation failed", exc_info=True)
            return None

    with ThreadPoolExecutor(max_workers=concurrency - 1) as pool:
        answers = list(pool.map(invoke, range(concurrency - 1)))
    instances = {instance_id, *filter(None, answers)}
    result = {"warmed": True, "instance": instance_id, "instances": len(instances), "requested": concurrency,
              "failed": answers.count(None)}
    logger.info("Warmup fan-out finished", extra=result)
    return result
