"""The JSON shapes the runtime reads (Lambda events, API answers), named for the type checker only.

Import under ``if TYPE_CHECKING:``: nothing here runs on a request or on the cold start. ``json.loads``
and Lambda's event give ``Any``; annotating a value as :data:`JsonValue` makes ``isinstance`` narrow it
to a typed ``dict``/``list`` with no cast and no extra work at run time.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias, TypedDict

#: A parsed JSON value (RFC 8259): what ``json.loads`` and a Lambda event's fields hold.
JsonValue: TypeAlias = "dict[str, JsonValue] | list[JsonValue] | str | int | float | bool | None"


class AwsError(TypedDict, total=False):
    """The ``Error`` of an AWS error answer."""

    Code: str
    Message: str


class AwsResponseMetadata(TypedDict, total=False):
    """The ``ResponseMetadata`` botocore adds to every answer."""

    HTTPStatusCode: int
    RequestId: str


class AwsErrorResponse(TypedDict, total=False):
    """``ClientError.response``: what botocore parsed from an AWS service's error answer."""

    Error: AwsError
    ResponseMetadata: AwsResponseMetadata


class SqsMessage(Protocol):
    """What the worker reads of the ``SQSRecord`` Powertools' batch processor hands it (``EventType.SQS``).

    A protocol rather than Powertools' class: the runtime imports no Powertools module its layer's table
    leaves out, not even for the type checker.
    """

    @property
    def body(self) -> str: ...

    @property
    def message_id(self) -> str: ...
