"""AWS calls that never outlive their invocation: timeouts and retries from the time left.

A worker that waits on a hung DynamoDB (3 s × 2 attempts per call, a few calls per message)
outlives its invocation: Lambda stops it, and SQS redelivers the whole batch, each message a
step closer to the dead-letter queue. So every call made here gets the timeouts and the
attempts that fit in what is left of the invocation::

    with Budget.from_context(context).active():       # the worker, per batch (requests: the handler's)
        aws.call("dynamodb", "update_item", TableName=..., ...)
        s3 = aws.client("s3")                          # a client whose timeouts fit the time left

- A call uses the largest of :data:`TIERS` (connect, read timeout) that ends before the
  deadline minus :data:`RESERVE_S` (kept to report the batch), or is not made at all
  (:class:`OutOfTime`).
- Throttling, 5xx answers, refused, reset and timed-out connections are retried up to
  :data:`MAX_ATTEMPTS` times, with jittered exponential backoff, while another attempt fits.
- A request (no worker batch) gets the invocation's time left and two attempts: it fails
  fast, and its client may retry. Outside Lambda (local runs) there is no deadline.

boto3 loads with the first client (per tier and service, per instance; re-made after a
SnapStart restore), never at import.
"""

from __future__ import annotations

import contextvars
import logging
import random
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fastapi_lambda import lifecycle, observability

if TYPE_CHECKING:
    from fastapi_lambda.shapes import AwsErrorResponse

logger = logging.getLogger(__name__)


class Tier:
    """How long one attempt may wait: to connect, then for each read of the answer (seconds). A plain
    class, not a NamedTuple (ten times cheaper on the cold start); the tiers below are the only ones."""

    __slots__ = ("connect", "read", "seconds")

    def __init__(self, connect: float, read: float) -> None:
        self.connect, self.read, self.seconds = connect, read, connect + read

    def __repr__(self) -> str:
        return f"Tier(connect={self.connect}, read={self.read})"


#: From the calmest to the tightest: a call gets the first that ends before the deadline.
TIERS = (Tier(1.0, 3.0), Tier(0.5, 1.5), Tier(0.25, 0.5))
#: Kept at the end of an invocation to answer (the batch's report): no call may run into it.
RESERVE_S = 0.5
MAX_ATTEMPTS = 3
#: Attempts of a call made by a request (outside a worker's batch): it fails fast, the client may retry.
REQUEST_ATTEMPTS = 2
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.1, 1.0
#: Error codes AWS services answer when they throttle (retried like a 5xx).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "TransactionInProgressException", "SlowDown", "PriorRequestNotComplete", "LimitExceededException",
})


class OutOfTime(RuntimeError):
    """Not even the tightest attempt would end before the deadline: the call was not made."""


#: The clock and the pause of every budget (tests put a fake clock here).
clock: Callable[[], float] = time.monotonic
sleep: Callable[[float], None] = time.sleep


class Budget:
    """The time an invocation has left, and how many attempts a call may make within it."""

    def __init__(self, seconds: float | None, *, attempts: int = MAX_ATTEMPTS) -> None:
        self.deadline = None if seconds is None else clock() + seconds
        self.attempts = attempts

    @classmethod
    def from_context(cls, context: Any, *, attempts: int = MAX_ATTEMPTS) -> Budget:
        """What the Lambda ``context`` says is left; no deadline when it says nothing (local runs)."""
        try:
            seconds = context.get_remaining_time_in_millis() / 1000
        except Exception:  # no context, or not Lambda's
            seconds = None
        return cls(seconds, attempts=attempts)

    def remaining(self) -> float:
        """Seconds left for calls (the reserve excluded); infinite without a deadline."""
        if self.deadline is None:
            return float("inf")
        return self.deadline - clock() - RESERVE_S

    def tier(self) -> Tier:
        """The calmest tier that ends in time; :class:`OutOfTime` if none does."""
        left = self.remaining()
        for tier in TIERS:
            if tier.seconds <= left:
                return tier
        raise OutOfTime(f"{max(left, 0):.2f} s left before the deadline (and its {RESERVE_S} s reserve)")

    def keeping(self, seconds: float) -> Budget:
        """This budget ending ``seconds`` earlier: time kept for what must follow (undoing a step)."""
        budget = Budget(None, attempts=self.attempts)
        budget.deadline = None if self.deadline is None else self.deadline - seconds
        return budget

    @contextmanager
    def active(self) -> Generator[Budget]:
        """The budget of every call made here (on this thread, and in tasks it starts)."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("fastapi_lambda_budget", default=None)


class _Invocation:
    """The Lambda invocation being served (an instance serves one at a time); set by the handler."""

    context: Any = None


invocation = _Invocation()


def current() -> Budget:
    """The budget of a call made now: the worker's batch, else the invocation's time left with
    :data:`REQUEST_ATTEMPTS` (a request fails fast), else no deadline (local runs)."""
    budget = _current.get()
    if budget is not None:
        return budget
    return Budget.from_context(invocation.context, attempts=REQUEST_ATTEMPTS)


# --- clients per service and tier -------------------------------------------------------------------

def _make_clients() -> dict[tuple[str, Tier], Any]:
    return {}


_clients = lifecycle.per_instance(_make_clients, eager=False)


def _client_for(service: str, tier: Tier) -> Any:
    clients = _clients.get()
    if (service, tier) not in clients:
        observability.trace_aws()  # TRACING_MODE=xray: its calls become subsegments
        import boto3  # the runtime's; never at import of this module
        from botocore.config import Config

        # One attempt per call: the retries are ours (call()), so they stop when the time does.
        config = Config(connect_timeout=tier.connect, read_timeout=tier.read,
                        retries={"mode": "standard", "total_max_attempts": 1})
        clients[service, tier] = boto3.client(service, config=config)
    return clients[service, tier]


def client(service: str) -> Any:
    """A client whose every attempt ends before the deadline, without retries (for a call that
    streams, such as ``get_object``'s body). :class:`OutOfTime` when none would end in time."""
    return _client_for(service, current().tier())


def per_instance_client(service: str) -> lifecycle.PerInstance[Any]:
    """The calmest tier's client of ``service``, made at init in eager mode (declare it at module level)."""
    return lifecycle.per_instance(lambda: _client_for(service, TIERS[0]))


def call(service: str, operation: str, **parameters: Any) -> Any:
    """``client.<operation>(**parameters)``, within the current budget (see the module's doc)."""
    budget = current()
    attempt = 0
    while True:
        attempt += 1
        method = getattr(_client_for(service, budget.tier()), operation)
        try:
            return method(**parameters)
        except Exception as error:
            if attempt >= budget.attempts or not retryable(error):
                raise
            pause = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))
            if budget.remaining() - pause < TIERS[-1].seconds:
                raise  # no time for another attempt: the caller decides what the failure means
            logger.info("Retrying %s.%s after %s", service, operation, reason(error),
                        extra={"attempt": attempt, "pause_s": round(pause, 3)})
            sleep(pause)


def reason(error: BaseException) -> str:
    """A short name for what went wrong: the AWS error code, or the exception's type."""
    response: AwsErrorResponse | None = getattr(error, "response", None)  # botocore's ClientError has one
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code or type(error).__name__


def retryable(error: BaseException) -> bool:
    """Whether another attempt may succeed: throttling, a 5xx, a connection refused, reset or timed out."""
    response: AwsErrorResponse | None = getattr(error, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return reason(error) in THROTTLING_CODES or status >= 500
    return unreachable(error)


def unreachable(error: BaseException) -> bool:
    """Whether the service could not be reached or did not answer in time (rather than answering no)."""
    from botocore.exceptions import ConnectionError as BotocoreConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(error, BotocoreConnectionError | HTTPClientError | OSError)
