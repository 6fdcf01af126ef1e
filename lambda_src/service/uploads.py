"""Large uploads: ``POST /uploads`` answers a presigned S3 PUT URL, the client sends the file to S3.

API Gateway and Lambda stop request bodies at 10 MB (REST) and 6 MB (Lambda's payload), so a
file goes around them: the app signs a URL for one object under the upload prefix
(``incoming/`` of the file intake bucket, where new objects become ``process-file`` tasks),
for that size and content type only, valid for a few minutes. The function may put objects
under that prefix and nothing else, so a URL it signs cannot reach anywhere else either.
Without ``UPLOAD_BUCKET`` (local runs) the route answers 503.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi_lambda import lifecycle
from fastapi_lambda.auth import AUTH_RESPONSES, User, current_user
from fastapi_lambda.constants import (
    DEFAULT_UPLOAD_MAX_BYTES,
    FILES_INCOMING_PREFIX,
    UPLOAD_BUCKET_VARIABLE,
    UPLOAD_MAX_BYTES_VARIABLE,
    UPLOAD_PREFIX_VARIABLE,
)
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

#: How long a signed URL stays valid.
URL_SECONDS = 900
#: S3's largest single PUT (a bigger file needs a multipart upload).
S3_MAX_PUT_BYTES = 5 * 1024 ** 3


def max_upload_bytes() -> int:
    """The largest upload the function's settings allow (``UPLOAD_MAX_BYTES``), within S3's."""
    return min(int(os.environ.get(UPLOAD_MAX_BYTES_VARIABLE, DEFAULT_UPLOAD_MAX_BYTES)), S3_MAX_PUT_BYTES)


router = APIRouter(tags=["uploads"])


def _signer() -> Any:
    """An S3 client that signs with SigV4 (botocore's default presigning in us-east-1 is SigV2, which cannot
    sign Content-Length, and newer regions refuse it). Signing makes no call, so it needs no time budget."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(signature_version="s3v4"))


signer = lifecycle.per_instance(_signer, eager=False)  # made again after a SnapStart restore (credentials)


class UploadRequest(BaseModel):
    filename: str = Field(min_length=1, max_length=255, description="The file's name; only its last part is kept")
    content_type: str = Field("application/octet-stream", max_length=255,
                              pattern=r"^[\w.+-]+/[\w.+-]+$", description="Sent as Content-Type with the PUT")
    # The schema states the limit the function starts with (its environment is fixed on Lambda).
    size: int = Field(gt=0, le=max_upload_bytes(), description="Bytes the client will send (signed: exactly these)")


class UploadUrl(BaseModel):
    url: str
    method: str = "PUT"
    headers: dict[str, str]
    key: str
    expires_in: int


def _safe_name(filename: str) -> str:
    """The last part of a client's file name, in characters an S3 key keeps readable."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip("._")
    return name[:128] or "file"


@router.post("/uploads", status_code=201, responses={
    413: {"description": "Larger than the largest upload allowed"},
    503: {"description": "Uploads are not configured here"}, **AUTH_RESPONSES})
async def create_upload(request: UploadRequest, user: Annotated[User, Depends(current_user)]) -> UploadUrl:
    """A URL to PUT one file to, under the upload prefix: the body goes to S3, not through the API."""
    bucket = os.environ.get(UPLOAD_BUCKET_VARIABLE)
    if not bucket:
        raise HTTPException(503, "Uploads are not configured (no upload bucket)")
    limit = max_upload_bytes()
    if request.size > limit:  # the environment changed since import (tests, a local run)
        raise HTTPException(413, f"size={request.size} is above the {limit}-byte limit of one upload")
    prefix = os.environ.get(UPLOAD_PREFIX_VARIABLE, FILES_INCOMING_PREFIX)
    key = f"{prefix}{uuid.uuid4().hex}/{_safe_name(request.filename)}"
    headers = {"Content-Type": request.content_type}
    # Signing is local (no call to S3): the URL carries the function's credentials, which allow PutObject
    # under the prefix only. ContentType and ContentLength are signed, so S3 refuses another type or size.
    try:
        url = signer.get().generate_presigned_url(
            "put_object", ExpiresIn=URL_SECONDS,
            Params={"Bucket": bucket, "Key": key, "ContentType": request.content_type, "ContentLength": request.size})
    except Exception as error:  # no credentials or region here (a local run): the server's fault, not the client's
        logger.warning("Cannot sign an upload URL: %s", type(error).__name__)
        raise HTTPException(503, "Uploads cannot be signed right now (no AWS credentials)") from None
    return UploadUrl(url=url, headers=headers, key=key, expires_in=URL_SECONDS)
