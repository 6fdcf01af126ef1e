"""Warmup pings, answered before the web app, and their fan-out to N instances.

A ping with concurrency N > 1 makes the first instance invoke its own alias N-1 more
times at once; each of those holds briefly so that they land on distinct instances,
and never fans out again. Every ping answers and none raises, whatever its payload:
Lambda would count an error and the schedule would retry it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from fastapi_lambda import lifecycle
from fastapi_lambda.constants import DEFAULT_HOLD_MS, MAX_HOLD_MS, MAX_WARMUP_CONCURRENCY, WARMUP_MARKER

if TYPE_CHECKING:
    from fastapi_lambda.shapes import JsonValue

logger = logging.getLogger(__name__)

#: Seconds kept free before the function timeout, so the answer is always sent.
DEADLINE_MARGIN_S = 0.5
CONNECT_TIMEOUT_S = 1.0


def _make_lambda_client() -> Any:
    import boto3  # the runtime's; imported only when a fan-out needs it
    from botocore.config import Config

    # One attempt: a warmup that fails is superseded by the next. A read outlasts the longest hold.
    config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=MAX_HOLD_MS / 1000 + 2,
                    retries={"total_max_attempts": 1})
    return boto3.client("lambda", config=config)


lambda_client = lifecycle.per_instance(_make_lambda_client)


def _bounded(value: Any, default: int, lower: int, upper: int) -> int:
    """``value`` as a whole number within [lower, upper]; ``default`` if it is not a number."""
    if isinstance(value, float) and not math.isfinite(value):  # 1e400 parses as inf
        return upper if value > 0 else lower
    try:
        return max(lower, min(int(value), upper))
    except (TypeError, ValueError, OverflowError):
        return default


def _alias_arn(context: Any) -> str | None:
    """The invoked ARN when it names an alias (never ``$LATEST`` or a version), else None."""
    arn = getattr(context, "invoked_function_arn", None)
    parts = arn.split(":") if isinstance(arn, str) else []
    if len(parts) != 8 or parts[7] == "$LATEST" or parts[7].isdigit():
        return None
    return arn


def _remaining_s(context: Any) -> float:
    try:
        return context.get_remaining_time_in_millis() / 1000
    except Exception:  # a context without the method (local calls): assume a generous budget
        return 30.0


def answer_warmup(request: JsonValue, context: Any, client: Any = None) -> dict[str, Any]:
    """Answer a warmup ping; fan out to N-1 more instances when asked to.

    ``client`` is a Lambda client (boto3's by default); the answer names how many
    distinct instances answered, this one included.
    """
    ping = request if isinstance(request, dict) else {}
    instance = lifecycle.instance_id
    concurrency = _bounded(ping.get("concurrency", 1), 1, 1, MAX_WARMUP_CONCURRENCY)
    fanned_out = ping.get("fanned_out") is True
    if concurrency == 1 and not fanned_out:  # the every-few-minutes case: keep it cheap
        return {"warmed": True, "instance": instance, "instances": 1}
    budget = _remaining_s(context) - DEADLINE_MARGIN_S
    hold_ms = min(_bounded(ping.get("hold_ms", DEFAULT_HOLD_MS), DEFAULT_HOLD_MS, 0, MAX_HOLD_MS),
                  max(0, int(budget * 1000)))
    if fanned_out:
        time.sleep(hold_ms / 1000)  # stay busy so concurrent pings cannot share this instance
        return {"warmed": True, "instance": instance}
    answer = {"warmed": True, "instance": instance, "instances": 1, "requested": concurrency}
    target = _alias_arn(context)
    if target is None:  # fan-out may only target an alias: a version or $LATEST is not what traffic uses
        logger.warning("Warmup fan-out skipped: not invoked through an alias",
                       extra={"target": getattr(context, "invoked_function_arn", None)})
        return answer
    try:
        client = client or lambda_client.get()
    except Exception:
        logger.warning("Warmup fan-out skipped: no Lambda client", exc_info=True)
        return {**answer, "failed": concurrency - 1}
    return _fan_out(target, concurrency, hold_ms, client, budget, answer)


def _fan_out(target: str, concurrency: int, hold_ms: int, client: Any, budget: float,
             answer: dict[str, Any]) -> dict[str, Any]:
    # Imported here: fan-out is rare, and the thread pool module is the one import this
    # module would otherwise add to every cold start (~1 ms).
    from concurrent.futures import ThreadPoolExecutor, wait

    payload = json.dumps({WARMUP_MARKER: {"fanned_out": True, "hold_ms": hold_ms}}).encode()

    def invoke() -> str | None:
        try:
            response = client.invoke(FunctionName=target, InvocationType="RequestResponse", Payload=payload)
            instance = json.loads(response["Payload"].read()).get("instance")
            return instance if isinstance(instance, str) else None
        except Exception:  # a failed ping must not fail the others, nor raise
            logger.warning("Warmup invocation failed", exc_info=True)
            return None

    pool = ThreadPoolExecutor(max_workers=concurrency - 1)
    futures = [pool.submit(invoke) for _ in range(concurrency - 1)]
    done, _ = wait(futures, timeout=max(0.0, budget))  # answer before the function times out
    pool.shutdown(wait=False, cancel_futures=True)
    answers = [f.result() for f in done]
    instances = {answer["instance"], *filter(None, answers)}
    result = {**answer, "instances": len(instances), "failed": concurrency - 1 - (len(answers) - answers.count(None))}
    logger.info("Warmup fan-out finished", extra=result)
    return result
