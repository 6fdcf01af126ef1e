"""Background tasks of the example app: the registry, its two task types, and the task API.

``POST /tasks`` validates and queues a task (202 with a ``Location`` to poll; the token
needs the ``api/tasks.write`` scope); ``GET /tasks/{id}`` answers its status to any
signed-in caller. The worker (the same handler module, for SQS events) runs
``generate-report`` and ``process-file``; the latter also serves the S3 file pipeline: an
object created under ``incoming/`` gets a result object under ``results/``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_lambda import aws
from fastapi_lambda.auth import AUTH_RESPONSES, SCOPE_RESPONSES, current_user, require_scopes
from fastapi_lambda.constants import FILE_TASK_TYPE, FILES_INCOMING_PREFIX, FILES_RESULTS_PREFIX, TASKS_WRITE_SCOPE
from fastapi_lambda.openapi import RETRY_AFTER, JsonInt, detail_response
from fastapi_lambda.tasks import (
    TASK_STATUS_SCHEMA,
    FilePayload,
    TaskEnvelope,
    TaskRegistry,
    TaskRejected,
    TaskSendError,
)
from pydantic import BaseModel, ConfigDict, Field

registry = TaskRegistry()


class ReportPayload(BaseModel):
    """What a report is about: a name and how many rows to produce."""

    model_config = ConfigDict(strict=True)  # the JSON types the schema names: no "5" or true for rows

    name: str = Field(min_length=1, max_length=100)
    rows: JsonInt = Field(ge=1, le=10_000)


@registry.task("generate-report", ReportPayload)
def generate_report(payload: ReportPayload, envelope: TaskEnvelope) -> dict[str, Any]:
    """A stand-in for long work with a deterministic result."""
    return {"report": payload.name, "rows": payload.rows, "total": payload.rows * (payload.rows + 1) // 2}


#: Made at init in eager mode; each call fits in the worker's time left (fastapi_lambda.aws).
s3_client = aws.per_instance_client("s3")


def count(chunks: Any) -> dict[str, int]:
    """Bytes, lines and words of a stream of byte chunks, as ``wc`` counts them, in constant memory."""
    size = lines = words = 0
    in_word = False
    for chunk in chunks:
        if not chunk:
            continue
        size += len(chunk)
        lines += chunk.count(b"\n")
        # A word split across two chunks is counted once, in the chunk where it starts.
        words += len(chunk.split()) - (1 if in_word and not chunk[:1].isspace() else 0)
        in_word = not chunk[-1:].isspace()
    return {"bytes": size, "lines": lines, "words": words}


@registry.task(FILE_TASK_TYPE, FilePayload)
def process_file(payload: FilePayload, envelope: TaskEnvelope) -> dict[str, Any]:
    """Count the object's bytes, lines and words; write them to ``results/<rest of key>.json``."""
    version = {"VersionId": payload.version_id} if payload.version_id else {}
    body = aws.client("s3").get_object(Bucket=payload.bucket, Key=payload.key, **version)["Body"]  # streamed
    counts = count(body.iter_chunks(chunk_size=1024 * 1024))
    result_key = FILES_RESULTS_PREFIX + payload.key.removeprefix(FILES_INCOMING_PREFIX) + ".json"
    result = {"bucket": payload.bucket, "key": payload.key, "version_id": payload.version_id, **counts}
    aws.call("s3", "put_object", Bucket=payload.bucket, Key=result_key, Body=json.dumps(result).encode(),
             ContentType="application/json")
    return {**result, "result_key": result_key}


# --- the task API ------------------------------------------------------------------------------

router = APIRouter(tags=["tasks"])
TaskId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]


class TaskRequest(BaseModel):
    """A task type and its payload; the registry validates the payload against the type's model (and the
    OpenAPI schema says so: :func:`document_task_requests`)."""

    type: str
    payload: dict[str, Any] = Field(default_factory=dict)


def document_task_requests(schema: dict[str, Any]) -> None:
    """``POST /tasks`` in the OpenAPI schema: one object per registered type, its payload that type's model."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    body = schema["paths"]["/tasks"]["post"]["requestBody"]["content"]["application/json"]
    body["schema"] = registry.request_schema(components)
    components.pop("TaskRequest", None)


ACCEPTED = {
    "description": "Queued: poll the task's status where Location says",
    "headers": {"Location": {"description": "Where to poll the task: /tasks/{id}", "schema": {"type": "string"}}},
    "content": {"application/json": {"schema": {
        "type": "object", "title": "TaskAccepted", "required": ["id", "status"],
        "properties": {"id": {"type": "string"}, "status": {"type": "string", "enum": ["queued"]}}}}},
}
UNAVAILABLE = {503: detail_response("The task could not be recorded or queued, or tokens cannot be checked right "
                                    "now: nothing was accepted", RETRY_AFTER)}


# async, though the SDK blocks: Lambda serves one request per instance, and a thread hop
# would cost more than it saves (a sync route starts the thread pool on the first call).
@router.post("/tasks", status_code=202, dependencies=[Depends(require_scopes(TASKS_WRITE_SCOPE))],
             responses={202: ACCEPTED, **AUTH_RESPONSES, **SCOPE_RESPONSES, **UNAVAILABLE})
async def create_task(task: TaskRequest, request: Request) -> JSONResponse:
    """Queue a task: 202 and where to poll it; 422 if invalid; 503 if it could not be queued."""
    try:
        envelope = registry.new_task(task.type, task.payload, trace_header=request.headers.get("x-amzn-trace-id"))
    except TaskRejected as rejected:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in rejected.errors]) from None
    try:
        registry.submit(envelope)
    except TaskSendError as error:
        return JSONResponse({"detail": "The task could not be queued; try again later"}, status_code=503,
                            headers={"Retry-After": str(error.retry_after)})
    return JSONResponse({"id": envelope.id, "status": "queued"}, status_code=202,
                        headers={"Location": f"/tasks/{envelope.id}"})


@router.get("/tasks/{task_id}", dependencies=[Depends(current_user)],
            responses={200: {"description": "The task's status",
                             "content": {"application/json": {"schema": TASK_STATUS_SCHEMA}}},
                       404: detail_response("No such task (or its record expired)"), **AUTH_RESPONSES})
async def get_task(task_id: TaskId) -> JSONResponse:
    """The task's status: queued, running, succeeded (with its result) or failed (with the error)."""
    status = registry.get_status(task_id)
    if status is None:
        raise HTTPException(status_code=404, detail="No such task")
    return JSONResponse(status)
