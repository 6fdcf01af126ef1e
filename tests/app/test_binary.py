"""Binary bodies both ways, through our handler and Mangum, for REST (v1) and HTTP API (v2) events.

A REST API with ``binaryMediaTypes`` and an HTTP API both hand the function a binary body
base64-encoded (``isBase64Encoded``) and turn a base64 answer back into bytes; what must hold
in between is that the app receives and sends the very bytes: a PNG, a multipart upload
carrying one, and any bytes at all. And gzip (``FASTAPI_LAMBDA_GZIP_MIN_BYTES``) compresses
answers above the threshold for HTTP APIs, which cannot compress themselves.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import struct
import zlib
from email.parser import BytesParser
from email.policy import HTTP

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi_lambda import lambda_handler
from fastapi_lambda.constants import GZIP_MIN_BYTES_VARIABLE
from hypothesis import given
from hypothesis import strategies as st

from tests.app.conftest import http_event

KINDS = ("rest_api_v1", "http_api_v2")


def png(width: int = 64, height: int = 64) -> bytes:
    """A real PNG (every byte value appears in its pixels), built with zlib: no imaging library needed."""
    rows = b"".join(b"\x00" + bytes((x * 4 + y * 7 + c) % 256 for x in range(width) for c in range(3))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png()


def multipart(boundary: str, *parts: tuple[str, str, str, bytes]) -> bytes:
    """A multipart/form-data body: (field, filename, content type, data) per part."""
    out = b""
    for field, filename, content_type, data in parts:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: {content_type}\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def binary_app() -> FastAPI:
    app = FastAPI()

    @app.get("/image.png")
    async def image() -> Response:
        return Response(PNG, media_type="image/png")

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        body = await request.body()
        return Response(body, media_type=request.headers.get("content-type", "application/octet-stream"),
                        headers={"x-sha256": hashlib.sha256(body).hexdigest()})

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        # The stdlib's MIME parser: the app sees the multipart body exactly as the client sent it.
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + await request.body())
        files = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        photo = files["photo"]
        filename = photo.get_filename()
        assert filename is not None  # the client names the file
        return Response(photo.get_payload(decode=True), media_type=photo.get_content_type(),
                        headers={"x-filename": filename})

    @app.get("/report")
    async def report() -> JSONResponse:
        return JSONResponse({"rows": [{"id": i, "text": "the same words again"} for i in range(200)]})

    @app.get("/small")
    async def small() -> JSONResponse:
        return JSONResponse({"ok": True})

    return app


@pytest.fixture(scope="module")
def handler():
    return lambda_handler(binary_app())


def body_of(response: dict) -> bytes:
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


def header(response: dict, name: str) -> str | None:
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    multi = {k.lower(): v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
    return headers.get(name) or multi.get(name)


@pytest.mark.parametrize("kind", KINDS)
def test_a_png_answer_comes_back_base64_encoded_byte_for_byte(handler, kind, lambda_context):
    response = handler(http_event("GET", "/image.png", kind=kind, headers={"accept": "image/png"}), lambda_context)

    assert response["statusCode"] == 200 and response["isBase64Encoded"] is True
    assert body_of(response) == PNG and header(response, "content-type") == "image/png"


@pytest.mark.parametrize("kind", KINDS)
def test_a_png_request_body_reaches_the_app_byte_for_byte(handler, kind, lambda_context):
    response = handler(http_event("POST", "/echo", kind=kind, body=PNG, headers={"content-type": "image/png"}),
                       lambda_context)

    assert response["statusCode"] == 200
    assert header(response, "x-sha256") == hashlib.sha256(PNG).hexdigest()
    assert body_of(response) == PNG


@pytest.mark.parametrize("kind", KINDS)
def test_a_multipart_upload_reaches_the_app_byte_for_byte(handler, kind, lambda_context):
    boundary = "----fastapi-lambda-7d1f"
    body = multipart(boundary, ("note", "note.txt", "text/plain", "naïve café\n".encode()),
                     ("photo", "cat.png", "image/png", PNG))

    response = handler(http_event("POST", "/upload", kind=kind, body=body,
                                  headers={"content-type": f"multipart/form-data; boundary={boundary}"}),
                       lambda_context)

    assert response["statusCode"] == 200, body_of(response)
    assert body_of(response) == PNG and header(response, "x-filename") == "cat.png"


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.binary(min_size=1, max_size=4096))
def test_any_bytes_make_the_round_trip(handler, kind, data):
    response = handler(http_event("POST", "/echo", kind=kind, body=data,
                                  headers={"content-type": "application/octet-stream"}), None)

    assert response["statusCode"] == 200 and body_of(response) == data


@pytest.fixture(scope="module")
def gzip_handler():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(GZIP_MIN_BYTES_VARIABLE, "1000")
        return lambda_handler(binary_app())


@pytest.mark.parametrize("kind", KINDS)
def test_gzip_compresses_answers_above_the_threshold_for_callers_that_accept_it(gzip_handler, kind, lambda_context):
    response = gzip_handler(http_event("GET", "/report", kind=kind, headers={"accept-encoding": "gzip, br"}),
                            lambda_context)

    compressed = body_of(response)
    assert response["isBase64Encoded"] is True and header(response, "content-encoding") == "gzip"
    rows = json.loads(gzip.decompress(compressed))["rows"]
    assert len(rows) == 200 and len(compressed) < len(json.dumps({"rows": rows})) / 5


@pytest.mark.parametrize(("path", "accept"), [("/small", "gzip"), ("/report", "identity")],
                         ids=["below-threshold", "not-accepted"])
def test_gzip_leaves_small_answers_and_callers_without_gzip_alone(gzip_handler, path, accept, lambda_context):
    response = gzip_handler(http_event("GET", path, headers={"accept-encoding": accept}), lambda_context)

    assert header(response, "content-encoding") is None and response["isBase64Encoded"] is False
    assert json.loads(response["body"])


def test_without_the_setting_nothing_is_compressed(handler, lambda_context):
    response = handler(http_event("GET", "/report", headers={"accept-encoding": "gzip"}), lambda_context)

    assert header(response, "content-encoding") is None and json.loads(response["body"])["rows"]
