"""``POST /uploads``: a presigned S3 PUT URL, used for real against a moto server.

The client asks for a URL (the body never passes API Gateway or Lambda, which stop at 10 MB
and 6 MB), PUTs the file to S3 with the signed headers, and the object lands under the upload
prefix (``incoming/``, where the file intake turns it into a task).
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
import uuid

import pytest
from fastapi_lambda.constants import UPLOAD_BUCKET_VARIABLE, UPLOAD_MAX_BYTES_VARIABLE, UPLOAD_PREFIX_VARIABLE

from tests.app.conftest import http_answer, http_event, jwt_authorizer
from tests.app.test_binary import PNG


@pytest.fixture
def handler():
    from service.handler import handler

    return handler


@pytest.fixture
def bucket(aws, monkeypatch):
    name = f"uploads-{uuid.uuid4().hex[:10]}"
    aws.s3.create_bucket(Bucket=name)
    monkeypatch.setenv(UPLOAD_BUCKET_VARIABLE, name)
    monkeypatch.setenv(UPLOAD_PREFIX_VARIABLE, "incoming/")
    return name


def ask(handler, context, **request) -> tuple[int, dict]:
    event = http_event("POST", "/uploads", body=json.dumps(request), authorizer=jwt_authorizer())
    status, _, body = http_answer(handler(event, context))
    return status, body


def put(url: str, data: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def test_a_file_goes_to_s3_through_the_signed_url(handler, lambda_context, aws, bucket):
    status, upload = ask(handler, lambda_context, filename="cat.png", content_type="image/png", size=len(PNG))

    assert status == 201, upload
    assert upload["method"] == "PUT" and upload["headers"] == {"Content-Type": "image/png"}
    assert upload["key"].startswith("incoming/") and upload["key"].endswith("/cat.png")
    assert put(upload["url"], PNG, upload["headers"]) == 200
    stored = aws.s3.get_object(Bucket=bucket, Key=upload["key"])
    assert hashlib.sha256(stored["Body"].read()).digest() == hashlib.sha256(PNG).digest()
    assert stored["ContentType"] == "image/png"


def test_the_url_is_signed_for_its_type_size_and_time(handler, lambda_context, bucket):
    status, upload = ask(handler, lambda_context, filename="a.csv", content_type="text/csv", size=10)

    assert status == 201 and upload["expires_in"] == 900
    signed = upload["url"].split("X-Amz-SignedHeaders=")[1].split("&")[0].split("%3B")
    assert {"content-type", "content-length", "host"} <= set(signed)
    assert "X-Amz-Expires=900" in upload["url"]


@pytest.mark.parametrize(("filename", "name"), [
    ("../../etc/passwd", "passwd"), ("C:\\Users\\me\\report 2026.pdf", "report_2026.pdf"), ("...", "file"),
    ("rés umé?.txt", "r_s_um_.txt")])
def test_a_file_name_cannot_leave_the_prefix(handler, lambda_context, bucket, filename, name):
    status, upload = ask(handler, lambda_context, filename=filename, size=1)

    assert status == 201
    prefix, token, last = upload["key"].split("/")
    assert (prefix, len(token), last) == ("incoming", 32, name)


@pytest.mark.parametrize("request_body", [
    {"filename": "a", "size": 0}, {"filename": "", "size": 1}, {"filename": "a", "size": 1, "content_type": "text"},
    {"filename": "a"}, {"filename": "a", "size": 6 * 1024 ** 3}], ids=["empty", "no-name", "type", "no-size", "5GB+"])
def test_a_malformed_request_is_a_422(handler, lambda_context, bucket, request_body):
    assert ask(handler, lambda_context, **request_body)[0] == 422


def test_above_the_configured_limit_is_a_413(handler, lambda_context, bucket, monkeypatch):
    monkeypatch.setenv(UPLOAD_MAX_BYTES_VARIABLE, "1000")

    status, body = ask(handler, lambda_context, filename="big.bin", size=1001)
    assert status == 413 and "1000" in body["detail"]


def test_without_a_bucket_uploads_are_a_503(handler, lambda_context, monkeypatch):
    monkeypatch.delenv(UPLOAD_BUCKET_VARIABLE, raising=False)

    assert ask(handler, lambda_context, filename="a.txt", size=1)[0] == 503


def test_a_caller_without_identity_gets_a_401(handler, lambda_context, bucket):
    event = http_event("POST", "/uploads", body=json.dumps({"filename": "a", "size": 1}))
    assert handler(event, lambda_context)["statusCode"] == 401


def test_without_credentials_signing_is_a_503_not_a_500(handler, lambda_context, monkeypatch):
    from botocore.exceptions import NoCredentialsError
    from service import uploads

    class Unsigned:
        def generate_presigned_url(self, *args, **kwargs):
            raise NoCredentialsError()

    monkeypatch.setenv(UPLOAD_BUCKET_VARIABLE, "uploads-test")
    monkeypatch.setattr(uploads.signer, "value", Unsigned())

    assert ask(handler, lambda_context, filename="a.txt", size=1)[0] == 503
