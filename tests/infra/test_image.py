"""Container packaging: the staged build context holds what the image needs, the image function keeps the alias,
cold start, tracing, alarms and releases of a zip one, synth never needs Docker, and SnapStart is refused."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from fastapi_lambda.constants import SMOKE_TEST_HANDLER
from fastapi_lambda.requirements import CAPABILITIES, requirements_for

from cdk_app.bundling import BundlingTarget
from cdk_app.bundling.locks import locked_requirements
from cdk_app.cold_start import ColdStart
from cdk_app.function import ServiceFunction
from cdk_app.image import APP_DIR, BASE_IMAGE, DOCKERFILE, REQUIREMENTS, stage_build_context
from cdk_app.settings import ConfigError, load_settings, read_cdk_json_context
from cdk_app.settings.rules import RuleError
from cdk_app.stack import build_stacks
from tests.infra.conftest import SKIP_BUNDLING, make_app, only, template_of

LAMBDA_SRC = Path(__file__).resolve().parents[2] / "lambda_src"
ROOT = LAMBDA_SRC.parent


def image_context(environment: str = "dev") -> dict:
    context = read_cdk_json_context()
    context["environments"][environment]["function"]["packaging"] = "image"
    return {**context, "env": environment}


@pytest.fixture(scope="module")
def image_template():
    return template_of(build_stacks(make_app(image_context()))["dev"])


# --- the build context -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    return stage_build_context(LAMBDA_SRC, BundlingTarget(), tmp_path_factory.mktemp("context"))


def test_the_context_holds_the_app_the_runtime_package_and_the_pins(staged):
    app = staged / APP_DIR
    assert (app / "service" / "handler.py").is_file() and (app / "service" / "main.py").is_file()
    assert (app / "fastapi_lambda" / "release.py").is_file() and (app / "fastapi_lambda" / "dispatch.py").is_file()
    pins = (staged / REQUIREMENTS).read_text().splitlines()
    locked = [line for line in locked_requirements(LAMBDA_SRC / "requirements.txt", include_aws_sdk=False)]
    assert set(locked) <= set(pins), "every pin of the lock is installed into the image"
    assert set(requirements_for(frozenset(CAPABILITIES))) <= set(pins), "and what the runtime package needs"
    assert not any(re.match(r"(boto3|botocore)\b", line) for line in pins), "the base image provides the AWS SDK"


def test_the_context_leaves_out_caches_tests_and_the_lock_from_the_app(staged):
    app = staged / APP_DIR
    assert not list(app.rglob("__pycache__")) and not list(app.rglob("*.pyc"))
    assert not (app / "requirements.txt").exists() and not (app / "tests").exists()


def test_every_file_the_dockerfile_copies_is_in_the_context(staged):
    dockerfile = (staged / "Dockerfile").read_text()
    sources = [line.split()[1] for line in dockerfile.splitlines()
               if line.startswith("COPY ") and "--from=" not in line]
    assert sources == [REQUIREMENTS, f"{APP_DIR}/"]
    for source in sources:
        assert (staged / source).exists(), f"COPY {source}: not in the build context"


def test_the_dockerfile_builds_in_two_stages_on_the_lambda_base_image_with_pyc():
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert stages == [f"{BASE_IMAGE}:${{PYTHON_VERSION}}"] * 2
    assert "AS build" in DOCKERFILE and "COPY --from=build /build/site/ ${LAMBDA_TASK_ROOT}/" in DOCKERFILE
    assert "--only-binary=:all:" in DOCKERFILE, "no compiler in the base image: wheels only, as for the zip"
    assert "compileall -q -j 0 --invalidation-mode unchecked-hash /build/site" in DOCKERFILE
    # The compile step comes after the app is copied, so the app's own modules get .pyc too.
    assert DOCKERFILE.index(f"COPY {APP_DIR}/") < DOCKERFILE.index("compileall")


def test_the_staged_context_is_the_same_for_the_same_inputs(staged, tmp_path):
    again = stage_build_context(LAMBDA_SRC, BundlingTarget(), tmp_path / "again")

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(again) == files(staged), "a changing context would change the image asset's hash on every synth"


# --- the image function in the template --------------------------------------------------------

def test_the_api_function_is_an_image_with_the_handler_as_its_command(image_template):
    _, function = only(image_template, "AWS::Lambda::Function", "Api")
    properties = function["Properties"]
    assert properties["PackageType"] == "Image"
    assert properties["ImageConfig"] == {"Command": ["service.handler.handler"]}
    assert "ImageUri" in properties["Code"]
    assert not {"Handler", "Runtime", "Layers"} & set(properties)
    assert properties["Architectures"] == ["arm64"]


def test_an_image_keeps_the_alias_cold_start_tracing_alarms_and_release(image_template):
    _, function = only(image_template, "AWS::Lambda::Function", "Api")
    properties = function["Properties"]
    assert properties["TracingConfig"] == {"Mode": "Active"}
    assert properties["Environment"]["Variables"]["IMPORT_MODE"] == "lazy"
    alias_id, alias = only(image_template, "AWS::Lambda::Alias", "Api")
    assert "CodeDeployLambdaAliasUpdate" in alias["UpdatePolicy"]
    rule = next(iter(image_template.find_resources("AWS::Events::Rule").values()))  # dev's warmup
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Ref": alias_id}
    alarms = {name for name in image_template.find_resources("AWS::CloudWatch::Alarm")}
    assert any(n.startswith("ObservabilityApiErrors") for n in alarms)
    assert any(n.startswith("ObservabilityApiSlowP99") for n in alarms)


def test_an_image_environment_has_no_dependency_layer(image_template):
    assert not image_template.find_resources("AWS::Lambda::LayerVersion")


def test_the_hooks_run_from_the_same_image_with_their_own_command(image_template):
    functions = image_template.find_resources("AWS::Lambda::Function")
    images = {json.dumps(f["Properties"]["Code"]["ImageUri"]) for f in functions.values()
              if f["Properties"].get("PackageType") == "Image"}
    hooks = [f for name, f in functions.items() if "TrafficHook" in name]
    assert hooks and all(h["Properties"]["ImageConfig"] == {"Command": [SMOKE_TEST_HANDLER]} for h in hooks)
    assert len(images) == 1, "the API, the worker and the hooks share one image asset"


# --- synth without a Docker engine or client ---------------------------------------------------

def test_synth_stages_the_image_without_docker(tmp_path):
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not (Path(d) / "docker").exists())
    assert shutil.which("docker", path=path) is None
    script = textwrap.dedent("""
        import json, sys
        from tests.infra.conftest import make_app
        from cdk_app.stack import build_stacks
        context = json.loads(sys.argv[1])
        app = make_app(context, outdir=sys.argv[2])
        build_stacks(app)
        app.synth()
    """)
    done = subprocess.run([sys.executable, "-c", script, json.dumps(image_context()), str(tmp_path)], cwd=ROOT,
                          env={**os.environ, "PATH": path}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    assets = json.loads((tmp_path / "fastapi-lambda-dev.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    context = tmp_path / image["source"]["directory"]
    assert (context / "Dockerfile").read_text() == DOCKERFILE
    assert (context / APP_DIR / "service" / "handler.py").is_file() and (context / REQUIREMENTS).is_file()
    assert image["source"].get("platform") == "linux/arm64"
    assert image["source"].get("dockerBuildArgs") == {"PYTHON_VERSION": "3.13"}


# --- refusals ----------------------------------------------------------------------------------

def test_snapstart_with_an_image_is_refused_naming_both_settings():
    context = image_context("staging")  # staging's strategy is snapstart
    with pytest.raises(ConfigError, match=r"cold_start.strategy 'snapstart' with function.packaging 'image' is "
                                          r"refused.*set function.packaging to 'zip'"):
        load_settings({k: v for k, v in context.items() if k != "env"})


def test_snapstart_with_an_image_is_refused_by_the_construct_naming_its_props():
    stack = Stack(App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False), "Refused")
    with pytest.raises(RuleError, match="cold_start.strategy 'snapstart' with packaging 'image'"):
        ServiceFunction(stack, "Orders", packaging="image", cold_start=ColdStart.snap_start())


def test_layers_with_an_image_are_refused():
    stack = Stack(App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False), "Layers")
    layer = ServiceFunction(stack, "Zip").dependencies
    with pytest.raises(ValueError, match="packaging='image' takes no layers"):
        ServiceFunction(stack, "Orders", packaging="image", dependencies=layer)


def test_adot_tracing_with_an_image_is_refused_naming_both_settings():
    context = image_context()
    context["environments"]["dev"]["observability"] = {
        "tracing": "adot", "adot_layer_arn": "arn:aws:lambda:eu-west-1:901920570463:layer:aws-otel-python-arm64-ver-1-32-0:1"}
    with pytest.raises(ConfigError, match="observability.tracing 'adot' adds the ADOT layer, but function.packaging "
                                          "'image' takes no layers"):
        load_settings({k: v for k, v in context.items() if k != "env"})
