"""As a user who imports the constructs into their own CDK app (examples/consumer).

The library is pip-installed (not editable) from a copy of this repository, the app
lives in a temporary folder with its own package and a deliberately incomplete lock,
and the real CDK CLI synthesizes it with the real bundler for this machine's
architecture. Then each function's bundle is imported and invoked in a fresh process
of the target Python, the way Lambda lays it out.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cdk_app.bundling import find_python

REPO = Path(__file__).resolve().parents[2]
CONSUMER = REPO / "examples" / "consumer"
CDK_CLI = REPO / "node_modules" / ".bin" / "cdk"
EVENTS = REPO / "tests" / "app" / "events"
ARCHITECTURE = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
PYTHON = "3.13"

pytestmark = pytest.mark.slow


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{command[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="session")
def installed_library(tmp_path_factory) -> Path:
    """``pip install`` of a copy of this repository (pip writes build/ into the tree it builds)."""
    root = tmp_path_factory.mktemp("library")
    copy = root / "repo"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, copy / name)
    shutil.copytree(REPO / "cdk_app", copy / "cdk_app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "lambda_src" / "fastapi_lambda", copy / "lambda_src" / "fastapi_lambda",
                    ignore=shutil.ignore_patterns("__pycache__"))
    site = root / "site"
    run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--target", str(site), str(copy)])
    return site


@pytest.fixture(scope="session")
def consumer(installed_library, tmp_path_factory):
    if find_python(PYTHON) is None or not CDK_CLI.exists():
        pytest.skip(f"needs Python {PYTHON} and the CDK CLI (make setup)")
    app_dir = tmp_path_factory.mktemp("consumer") / "orders-app"
    shutil.copytree(CONSUMER, app_dir, ignore=shutil.ignore_patterns("__pycache__", "cdk.out"))
    # Only this interpreter's site-packages (aws-cdk-lib ...) plus the installed library: not the checkout.
    env = {**os.environ, "PYTHONPATH": str(installed_library), "PYTHONNOUSERSITE": "1",
           "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    where = run([sys.executable, "-c", "import cdk_app, fastapi_lambda; print(cdk_app.__file__); "
                 "print(fastapi_lambda.__file__)"], cwd=app_dir, env=env).stdout.split()
    assert all(path.startswith(str(installed_library)) for path in where), where
    outdir = app_dir / "cdk.out"
    run([str(CDK_CLI), "synth", "--quiet", "--app", f"{sys.executable} app.py", "--output", str(outdir),
         "-c", f"architecture={ARCHITECTURE}"], cwd=app_dir, env=env)
    return outdir


def functions_of(outdir: Path) -> dict[str, dict]:
    """Each function's handler, environment and asset folders (code, layer)."""
    template = json.loads((outdir / "orders.template.json").read_text())["Resources"]
    layers = {name: r for name, r in template.items() if r["Type"] == "AWS::Lambda::LayerVersion"}
    (layer,) = layers.values()
    layer_dir = outdir / f"asset.{layer['Properties']['Content']['S3Key'].removesuffix('.zip')}"
    found = {}
    for name, resource in template.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        properties = resource["Properties"]
        found[name] = {
            "handler": properties["Handler"],
            "environment": properties["Environment"]["Variables"],
            "code": outdir / f"asset.{properties['Code']['S3Key'].removesuffix('.zip')}",
            "layer": layer_dir,
        }
    return found


def invoke(function: dict, *events: dict) -> list[dict]:
    """Import the handler in a fresh target-Python process laid out like Lambda and call it."""
    module, _, attribute = function["handler"].rpartition(".")
    probe = (
        "import importlib, json, sys\n"
        "from types import SimpleNamespace\n"
        f"handler = getattr(importlib.import_module({module!r}), {attribute!r})\n"
        "context = SimpleNamespace(invoked_function_arn='arn:aws:lambda:us-east-1:123456789012:function:f:live',\n"
        "                          get_remaining_time_in_millis=lambda: 3000)\n"
        "print(json.dumps([handler(event, context) for event in json.load(sys.stdin)]))\n"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1", "AWS_DEFAULT_REGION": "us-east-1",
           "PYTHONPATH": f"{function['code']}{os.pathsep}{function['layer'] / 'python'}",
           **function["environment"]}
    python = find_python(PYTHON)
    assert python is not None  # the consumer fixture skips without one
    done = subprocess.run([*python, "-s", "-c", probe], input=json.dumps(events), capture_output=True,
                          text=True, env=env, cwd=function["code"], timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def http_event(method: str, path: str, body: str | None = None) -> dict:
    event = json.loads((EVENTS / "http_api_v2.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = f"{method} {path}"
    if body is not None:
        event.update(body=body, isBase64Encoded=False)
        event["headers"]["content-type"] = "application/json"
    return event


def test_both_entry_points_are_wired_without_this_repositorys_service(consumer):
    functions = functions_of(consumer)

    assert sorted(f["handler"] for f in functions.values()) == ["fastapi_lambda.entry.handler",
                                                                "orders.handler.handler"]
    for function in functions.values():
        assert not (function["code"] / "service").exists()
        assert (function["code"] / "fastapi_lambda" / "dispatch.py").is_file()
        assert list((function["code"] / "fastapi_lambda" / "__pycache__").glob("dispatch.cpython-313.pyc"))
    by_app = next(f for f in functions.values() if f["handler"] == "fastapi_lambda.entry.handler")
    assert by_app["environment"]["FASTAPI_LAMBDA_APP"] == "orders.main:app"


def test_the_incomplete_lock_was_resolved_into_a_complete_layer(consumer):
    site = next(iter(functions_of(consumer).values()))["layer"] / "python"
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}

    # The lock names fastapi and mangum only; what they need came in by resolution.
    assert {"fastapi", "mangum", "starlette", "pydantic", "pydantic_core", "typing_extensions"} <= installed
    assert not (site / "boto3").exists() and not (site / "botocore").exists()
    # What the runtime package's capabilities need came in too, and only for those the functions use: no cache, no
    # token verification in the function.
    assert {"aws_lambda_powertools", "aws_xray_sdk"} <= installed
    assert not {"redis", "pyjwt", "cryptography"} & installed


@pytest.mark.parametrize("handler", ["fastapi_lambda.entry.handler", "orders.handler.handler"])
def test_each_bundle_serves_http_and_answers_warmup_pings(consumer, handler):
    function = next(f for f in functions_of(consumer).values() if f["handler"] == handler)

    health, order, created, invalid, ping = invoke(
        function,
        http_event("GET", "/health"),
        http_event("GET", "/orders/1"),
        http_event("POST", "/orders", json.dumps({"item": "pen", "quantity": 3})),
        http_event("POST", "/orders", json.dumps({"item": "", "quantity": 0})),
        {"fastapi-lambda-warmup": {"concurrency": 1}},
    )

    assert (health["statusCode"], json.loads(health["body"])) == (200, {"status": "ok", "service": "orders"})
    assert json.loads(order["body"]) == {"id": 1, "item": "book", "quantity": 2}
    assert created["statusCode"] == 201 and json.loads(created["body"])["item"] == "pen"
    assert invalid["statusCode"] == 422
    assert ping["handled"] == "warmup" and ping["warmed"] is True


def test_only_the_declared_route_is_public_and_cdk_nag_and_the_preflight_passed(consumer):
    template = json.loads((consumer / "orders.template.json").read_text())["Resources"]
    routes = {r["Properties"]["RouteKey"]: r["Properties"].get("AuthorizationType", "NONE")
              for r in template.values() if r["Type"] == "AWS::ApiGatewayV2::Route"}

    assert routes == {"GET /health": "NONE", "$default": "AWS_IAM"}
    # The CLI synth ran the same cdk-nag checks and the deploy preflight (add_compliance_checks) and would
    # have failed on a finding; the preflight left no warning either.
    report = json.loads((consumer / "validation-report.json").read_text()) \
        if (consumer / "validation-report.json").exists() else {"pluginReports": []}
    assert all(r.get("conclusion") != "failure" for r in report["pluginReports"])
    assert [v for r in report["pluginReports"] if r["pluginName"] == "Preflight" for v in r["violations"]] == []
