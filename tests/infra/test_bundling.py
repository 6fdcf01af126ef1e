"""Docker-free bundling: what goes in, what changes the asset hash, and that the result imports."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from aws_cdk import App, Stack
from fastapi_lambda.constants import (
    APP_VARIABLE,
    AUTH_VERIFY_VARIABLE,
    CACHE_HOST_VARIABLE,
    CONFIG_PATH_VARIABLE,
    GENERIC_HANDLER,
    SMOKE_TEST_HANDLER,
    TASK_QUEUE_URL_VARIABLE,
    TRACING_VARIABLE,
)
from fastapi_lambda.requirements import (
    CAPABILITY_REQUIREMENTS,
    POWERTOOLS_MODULES,
    Capability,
    capabilities_of,
    dependency_set,
    powertools_modules,
    requirements_for,
)

import cdk_app.bundling as bundling
from cdk_app.auth import UserPool
from cdk_app.bundling import (
    LAMBDA_SRC,
    BundlingError,
    BundlingTarget,
    build_locally,
    find_python,
    install,
    locked_requirements,
    locks,
    target,
)
from cdk_app.bundling import powertools as powertools_pruning
from cdk_app.function import DependenciesLayer, FastApiFunction, ServiceFunction
from cdk_app.settings import read_cdk_json_context
from cdk_app.stack import build_stacks
from tests.infra.conftest import SKIP_BUNDLING, make_app, template_of

HOST_ARCHITECTURE = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
HOST_TARGET = BundlingTarget(python_version="3.13", architecture=HOST_ARCHITECTURE)
EVENT = Path(__file__).parents[1] / "app" / "events" / "http_api_v2.json"


def asset_keys(source: Path, target: BundlingTarget = BundlingTarget()) -> tuple[str, str]:
    """(layer, code) asset keys of a function built from ``source`` for ``target``."""
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False)
    stack = Stack(app, "Hashes")
    FastApiFunction(stack, "Api", source=source, target=target)
    template = template_of(stack).to_json()["Resources"]
    layer = next(r for r in template.values() if r["Type"] == "AWS::Lambda::LayerVersion")
    code = next(r for r in template.values() if r["Type"] == "AWS::Lambda::Function")
    return layer["Properties"]["Content"]["S3Key"], code["Properties"]["Code"]["S3Key"]


@pytest.fixture
def source(tmp_path) -> Path:
    copy = tmp_path / "lambda_src"
    # As a user's source: their package and lock; the runtime package comes from the library.
    shutil.copytree(LAMBDA_SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "fastapi_lambda"))
    return copy


@pytest.fixture
def baseline(source):
    return asset_keys(source)


def test_nothing_changed_nothing_changes(source, baseline):
    assert asset_keys(source) == baseline


def test_caches_and_stray_files_do_not_change_the_hashes(source, baseline):
    (source / "service" / "__pycache__").mkdir()
    (source / "service" / "__pycache__" / "main.cpython-313.pyc").write_bytes(b"\0")
    (source / ".DS_Store").write_text("x")

    assert asset_keys(source) == baseline


def test_source_change_changes_only_the_code(source, baseline):
    (source / "service" / "main.py").write_text((source / "service" / "main.py").read_text() + "\n# edited\n")

    layer, code = asset_keys(source)

    assert layer == baseline[0] and code != baseline[1]


def test_lock_change_changes_only_the_layer(source, baseline):
    lock = source / "requirements.txt"
    lock.write_text(lock.read_text().replace("idna==3.20", "idna==3.10"))

    layer, code = asset_keys(source)

    assert layer != baseline[0] and code == baseline[1]


@pytest.mark.parametrize("change", [{"architecture": "x86_64"}, {"python_version": "3.12"}, {"include_aws_sdk": True}])
def test_target_changes_change_both(source, baseline, change):
    layer, code = asset_keys(source, BundlingTarget(**change))

    assert layer != baseline[0] and code != baseline[1]


def test_bundler_logic_change_changes_both(source, baseline, monkeypatch):
    monkeypatch.setattr(target, "BUNDLER_REVISION", "0" * 16)

    layer, code = asset_keys(source)

    assert layer != baseline[0] and code != baseline[1]


def test_whether_pyc_could_be_built_is_not_part_of_the_hash(source, baseline):
    assert asset_keys(source, BundlingTarget(require_compiled=True)) == baseline


def test_lock_must_pin_exact_versions(tmp_path):
    lock = tmp_path / "requirements.txt"
    lock.write_text("fastapi>=0.100\n")

    with pytest.raises(BundlingError, match="'fastapi>=0.100' is not pinned"):
        locked_requirements(lock, include_aws_sdk=False)


def test_aws_sdk_is_left_out_unless_asked_for(tmp_path):
    lock = tmp_path / "requirements.txt"
    lock.write_text("boto3==1.44.5\nbotocore==1.44.5\nfastapi==0.163.2  # web\n\n")

    assert locked_requirements(lock, include_aws_sdk=False) == ["fastapi==0.163.2"]
    assert locked_requirements(lock, include_aws_sdk=True) == ["boto3==1.44.5", "botocore==1.44.5", "fastapi==0.163.2"]


def test_pip_command_targets_the_lambda_platform_resolves_and_never_builds_from_source(tmp_path):
    command = bundling.pip_install_command(tmp_path / "r.txt", tmp_path / "out", BundlingTarget())

    text = " ".join(command)
    assert "--only-binary=:all:" in command and "--no-compile" in command
    assert "--no-deps" not in command, "an incomplete lock must be resolved, not installed as is"
    assert "--python-version 3.13" in text and "--implementation cp" in text
    assert "--platform manylinux2014_aarch64" in text


def test_missing_interpreter_warns_and_ships_source_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(target, "find_python", lambda version: None)

    out = build_locally("code", tmp_path / "code", target=BundlingTarget())

    assert (out / "service" / "handler.py").is_file()
    assert not list(out.rglob("*.pyc"))
    assert "No Python 3.13 interpreter was found" in capsys.readouterr().err


def test_missing_interpreter_is_an_error_when_compiled_output_is_required(tmp_path, monkeypatch):
    monkeypatch.setattr(target, "find_python", lambda version: None)

    with pytest.raises(BundlingError, match="require_compiled is on"):
        build_locally("code", tmp_path / "code", target=BundlingTarget(require_compiled=True))


def test_strict_synth_fails_before_bundling_without_an_interpreter(monkeypatch):
    monkeypatch.setattr(target, "find_python", lambda version: None)
    app = App(context={"aws:cdk:bundling-stacks": ["**"]}, builtin_cloud_formation_validation=False)

    with pytest.raises(BundlingError, match="No Python 3.13 interpreter"):
        FastApiFunction(Stack(app, "Strict"), "Api", target=BundlingTarget(require_compiled=True))


def test_function_timeout_beyond_max_is_refused():
    from aws_cdk import Duration

    stack = Stack(App(context=SKIP_BUNDLING), "Timeouts")
    with pytest.raises(ValueError, match=r"expected_duration=30 gives a 36 s timeout \(120%\), above the 29 s the API "
                                         r"gateway \(max_timeout\) allows; set expected_duration to 24 or less"):
        FastApiFunction(stack, "Api", expected_duration=Duration.seconds(30), max_timeout=Duration.seconds(29))


# --- the real bundle, built once with pip for this machine's architecture ---------------

def host_python() -> tuple[str, ...]:
    """The command that runs the target's Python here (the fixtures below skip without one)."""
    python = find_python(HOST_TARGET.python_version)
    assert python is not None, bundling.missing_interpreter_message(HOST_TARGET.python_version)
    return python


@pytest.fixture(scope="session")
def host_bundle(tmp_path_factory):
    if find_python(HOST_TARGET.python_version) is None:
        pytest.skip(bundling.missing_interpreter_message(HOST_TARGET.python_version))
    root = tmp_path_factory.mktemp("bundle")
    return build_locally("layer", root / "layer", target=HOST_TARGET), build_locally("code", root / "code", target=HOST_TARGET)


@pytest.mark.slow
def test_bundle_ships_pyc_for_the_target_python_and_nothing_extra(host_bundle):
    layer, code = host_bundle
    site = layer / "python"
    tag = f"cpython-{HOST_TARGET.python_version.replace('.', '')}"
    assert list((code / "service" / "__pycache__").glob(f"handler.{tag}.pyc"))
    assert list((site / "fastapi" / "__pycache__").glob(f"applications.{tag}.pyc"))
    assert not (site / "bin").exists()
    assert not list(site.glob("*.dist-info/RECORD"))
    assert not list(site.rglob("tests"))
    assert not (site / "boto3").exists() and not (site / "botocore").exists()
    assert not (code / "requirements.txt").exists()


@pytest.mark.slow
def test_pyc_do_not_need_the_source_mtime(host_bundle):
    # unchecked-hash: the runtime never stats sources to validate them (read-only /var/task).
    layer, _ = host_bundle
    pyc = next((layer / "python" / "fastapi" / "__pycache__").glob("applications.*.pyc"))
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01, "expected hash-based, unchecked .pyc"


@pytest.mark.slow
def test_bundle_imports_and_serves_under_the_target_python(host_bundle):
    layer, code = host_bundle
    probe = (
        "import json, sys, service.handler as h; "
        f"r = h.handler(json.load(open({str(EVENT)!r})), None); "
        "print(json.dumps({'status': r['statusCode'], 'file': h.__file__, 'fastapi': sys.modules['fastapi'].__file__}))"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{code}{os.pathsep}{layer / 'python'}",
           "PYTHONDONTWRITEBYTECODE": "1", "APP_ENVIRONMENT": "bundle-test"}
    done = subprocess.run([*host_python(), "-s", "-c", probe],
                          capture_output=True, text=True, env=env, cwd=layer, timeout=120)

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == 200
    assert result["file"].startswith(str(code)) and result["fastapi"].startswith(str(layer))


@pytest.mark.slow
def test_pip_failure_is_a_clear_error(tmp_path):
    (tmp_path / "requirements.txt").write_text("fastapi==0.0.0.1\n")

    with pytest.raises(BundlingError, match=r"(?s)pip could not install .*manylinux wheels only.*No matching distribution found for fastapi==0.0.0.1"):
        build_locally("layer", tmp_path / "out", source=tmp_path, target=HOST_TARGET)


def test_missing_source_folder_is_a_clear_error(tmp_path):
    stack = Stack(App(context=SKIP_BUNDLING), "Missing")

    with pytest.raises(BundlingError, match=r"source=.*nowhere does not exist; pass source= the folder"):
        FastApiFunction(stack, "Api", source=tmp_path / "nowhere")


# --- completeness: every installed distribution's requirements, for the target -----------------

def fake_distribution(site: Path, name: str, version: str, *requires: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    package = name.replace("-", "_")
    (site / package).mkdir()
    (site / package / "__init__.py").write_text("")
    (info / "RECORD").write_text(f"{package}/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")


def test_a_complete_tree_has_no_unmet_requirements(tmp_path):
    fake_distribution(tmp_path, "fastapi", "0.163.2", "starlette>=0.40", "pydantic>=2")
    fake_distribution(tmp_path, "starlette", "1.10.0")
    fake_distribution(tmp_path, "pydantic", "2.14.4")

    assert bundling.unmet_requirements(tmp_path, BundlingTarget(), ["fastapi==0.163.2"], runtime={}) == []


def test_missing_and_mismatched_requirements_are_named_with_who_needs_them(tmp_path):
    fake_distribution(tmp_path, "fastapi", "0.163.2", "starlette>=2", "typing-extensions>=4.8")
    fake_distribution(tmp_path, "starlette", "1.10.0")

    unmet = bundling.unmet_requirements(tmp_path, BundlingTarget(), ["fastapi==0.163.2"],
                                        runtime={"cache": ("redis>=5",)})

    assert unmet == ["redis>=5 (needed by the cache capability of fastapi_lambda) is not installed",
                     "starlette>=2 (needed by fastapi 0.163.2) is installed as 1.10.0",
                     "typing-extensions>=4.8 (needed by fastapi 0.163.2) is not installed"]


def test_markers_and_extras_are_evaluated_for_the_target(tmp_path):
    fake_distribution(tmp_path, "web", "1.0", "uvloop; sys_platform == 'linux'", "colorama; sys_platform == 'win32'",
                      "tomli; python_version < '3.11'", "arm-only; platform_machine == 'aarch64'",
                      "orjson; extra == 'fast'", "brotli; extra == 'compress'")

    arm = bundling.unmet_requirements(tmp_path, BundlingTarget(architecture="arm64"), ["web[fast]==1.0"], runtime={})
    x86 = bundling.unmet_requirements(tmp_path, BundlingTarget(architecture="x86_64"), ["web==1.0"], runtime={})

    assert [line.split(";")[0] for line in arm] == ["arm-only", "orjson", "uvloop"]
    assert [line.split(";")[0] for line in x86] == ["uvloop"]


def test_the_runtime_provided_sdk_counts_as_present_unless_bundled(tmp_path):
    fake_distribution(tmp_path, "aws-xray-sdk", "2.14.0", "botocore>=1.11.3", "wrapt")
    fake_distribution(tmp_path, "wrapt", "1.17.0")

    assert bundling.unmet_requirements(tmp_path, BundlingTarget(), ["aws-xray-sdk==2.14.0"], runtime={}) == []
    assert bundling.unmet_requirements(tmp_path, BundlingTarget(include_aws_sdk=True), ["aws-xray-sdk==2.14.0"],
                                       runtime={}) \
        == ["botocore>=1.11.3 (needed by aws-xray-sdk 2.14.0) is not installed"]


def test_hashed_locks_keep_their_hashes_and_drop_the_sdk_whole(tmp_path):
    lock = tmp_path / "requirements.txt"
    lock.write_text("boto3==1.44.5 \\\n    --hash=sha256:aaa\n"
                    "fastapi==0.163.2 \\\n    --hash=sha256:bbb \\\n    --hash=sha256:ccc  # via -r in\n")

    lines = locked_requirements(lock, include_aws_sdk=False)

    assert lines == ["fastapi==0.163.2 --hash=sha256:bbb --hash=sha256:ccc"]
    assert locks.uses_hashes(lines)


@pytest.mark.slow
def test_an_incomplete_hashed_lock_is_refused_by_pip_with_the_reason(tmp_path):
    # Hash-checking mode cannot resolve what the lock leaves out: a clear error, not a broken bundle.
    (tmp_path / "requirements.txt").write_text(
        "mangum==0.22.0 --hash=sha256:" + "0" * 64 + "\n")

    with pytest.raises(BundlingError, match=r"(?s)pip could not install .*(hash|Hash)"):
        build_locally("layer", tmp_path / "out", source=tmp_path, target=HOST_TARGET)


# --- uv and Poetry locks --------------------------------------------------------------------

UV_PROJECT = Path(__file__).parent / "fixtures" / "uv_project"


def layer_key(source: Path) -> str:
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False)
    stack = Stack(app, "Locks")
    DependenciesLayer(stack, "Deps", source=source).layer_for({"http"})
    (layer,) = template_of(stack).find_resources("AWS::Lambda::LayerVersion").values()
    return layer["Properties"]["Content"]["S3Key"]


def test_a_uv_lock_is_a_lock_and_its_changes_change_the_layer(tmp_path):
    source = tmp_path / "uv_project"
    shutil.copytree(UV_PROJECT, source)
    before = layer_key(source)
    lock = source / "uv.lock"
    lock.write_text(lock.read_text().replace('version = "4.16.0"', 'version = "4.15.0"', 1))

    assert layer_key(source) != before


@pytest.mark.slow
def test_a_hashed_lock_missing_what_a_used_capability_needs_is_refused_naming_both(tmp_path):
    # Hash-checking mode cannot add the runtime's needs: the uv lock has no redis, and the function uses a cache.
    if locks._tool("uv") is None:
        pytest.skip("uv is not installed (requirements-dev.txt installs it)")

    with pytest.raises(BundlingError, match=r"(?s)is incomplete:\n  redis<9,>=5 \(needed by the cache capability of "
                                            r"fastapi_lambda\) is not installed\n.*or turn off the capability"):
        build_locally("layer", tmp_path / "out", source=UV_PROJECT, target=HOST_TARGET,
                      capabilities=frozenset({"http", "cache"}))


@pytest.mark.slow
def test_a_uv_lock_is_exported_with_its_hashes_and_installed(tmp_path):
    if locks._tool("uv") is None:
        pytest.skip("uv is not installed (requirements-dev.txt installs it)")
    site = build_locally("layer", tmp_path / "out", source=UV_PROJECT, target=HOST_TARGET,
                         capabilities=frozenset({"http", "parameters", "tracing"})) / "python"

    assert (site / "fastapi").is_dir() and (site / "mangum").is_dir() and (site / "starlette").is_dir()
    assert not (site.parent / "exported-requirements.txt").exists()


def test_a_poetry_lock_without_poetry_says_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "poetry.lock").write_text("# a lock\n")
    monkeypatch.setattr(locks, "_tool", lambda name: None)

    with pytest.raises(BundlingError, match=r"poetry.lock needs `poetry` to export it, and poetry is not installed"):
        build_locally("layer", tmp_path / "out", source=tmp_path, target=HOST_TARGET)


@pytest.mark.slow
def test_an_sdk_pulled_in_by_a_dependency_is_left_to_the_runtime(tmp_path):
    # aws-xray-sdk needs botocore: pip resolves it in, the bundler takes it out again (Lambda has it).
    (tmp_path / "requirements.txt").write_text("aws-xray-sdk==2.15.0\n")

    site = build_locally("layer", tmp_path / "out", source=tmp_path, target=HOST_TARGET) / "python"

    assert (site / "aws_xray_sdk").is_dir() and (site / "wrapt").is_dir() and (site / "mangum").is_dir()
    assert not (site / "botocore").exists() and not list(site.glob("botocore-*.dist-info"))


# --- one layer per dependency set: what each function's capabilities need, and nothing else ------------

def is_release_hook(resource: dict) -> bool:
    """A CodeDeploy hook runs on the layer of the function it releases, whatever its own variables say."""
    return resource["Properties"].get("Handler") == SMOKE_TEST_HANDLER


def layers_of(stack: Stack, *, hooks: bool = False) -> dict[str, dict]:
    """Each function's logical id -> {"layer": its dependency layer's logical id, "capabilities": ...}."""
    resources = template_of(stack).to_json()["Resources"]
    return {name: {"layer": r["Properties"]["Layers"][0]["Ref"],
                   "capabilities": capabilities_of(r["Properties"]["Environment"]["Variables"],
                                                   serves_http=r["Properties"]["Handler"] != GENERIC_HANDLER
                                                   or APP_VARIABLE in r["Properties"]["Environment"]["Variables"])}
            for name, r in resources.items() if r["Type"] == "AWS::Lambda::Function" and "Layers" in r["Properties"]
            and hooks == is_release_hook(r)}


def test_functions_with_the_same_dependency_set_share_one_layer_and_different_sets_do_not():
    stack = Stack(App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False), "Layers")
    FastApiFunction(stack, "Orders")
    FastApiFunction(stack, "Payments").add_environment(TASK_QUEUE_URL_VARIABLE, "https://sqs/queue")  # adds nothing
    FastApiFunction(stack, "Cached").add_environment(CACHE_HOST_VARIABLE, "cache.internal")
    ServiceFunction(stack, "Worker", tasks="service.tasks:registry")

    functions = layers_of(stack)
    layer = {prefix: next(f["layer"] for name, f in functions.items() if name.startswith(prefix))
             for prefix in ("Orders", "Payments", "Cached", "Worker")}

    assert layer["Orders"] == layer["Payments"]
    assert len({layer["Orders"], layer["Cached"], layer["Worker"]}) == 3
    assert len(template_of(stack).find_resources("AWS::Lambda::LayerVersion")) == 3


def test_each_environments_functions_share_the_layer_of_their_capabilities(synth, env_name):
    functions = layers_of(synth.stacks[env_name])
    settings = synth.stacks[env_name].settings

    assert len({f["layer"] for f in functions.values()}) == 1, "the API and the worker need the same packages"
    hooks = layers_of(synth.stacks[env_name], hooks=True)
    assert hooks and {f["layer"] for f in hooks.values()} == {f["layer"] for f in functions.values()}, \
        "release hooks run on the layer of the function they release: no layer of their own"
    for function in functions.values():
        assert ("cache" in function["capabilities"]) == (settings.cache.kind != "none")
        assert ("auth-verify" in function["capabilities"]) == (settings.auth.enabled
                                                               and settings.auth.verify_in_function)
        assert function["layer"].startswith("DependenciesLayer" + ("Cache" if settings.cache.kind != "none" else ""))


def test_capabilities_follow_the_variables_the_runtime_reads():
    assert capabilities_of({}, serves_http=False) == {"core", "tracing"}  # an unset TRACING_MODE means xray
    assert capabilities_of({TRACING_VARIABLE: "adot", AUTH_VERIFY_VARIABLE: "false"}, serves_http=True) \
        == {"core", "http"}
    assert capabilities_of({TRACING_VARIABLE: "off", AUTH_VERIFY_VARIABLE: "true", CACHE_HOST_VARIABLE: {"Ref": "X"},
                            CONFIG_PATH_VARIABLE: "/app/dev/"}, serves_http=True) \
        == {"core", "http", "auth-verify", "cache", "parameters"}


def test_sets_that_need_the_same_packages_are_one_set():
    assert dependency_set({"http", "parameters", "tasks"}) == dependency_set({"parameters"}) == {"core", "parameters"}
    assert dependency_set({"http", "cache"}) != dependency_set({"http"})
    assert requirements_for({"cache"}) == (*CAPABILITY_REQUIREMENTS["core"], *CAPABILITY_REQUIREMENTS["cache"])


def test_pyproject_extras_mirror_the_requirement_table():
    extras = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]

    for capability, lines in CAPABILITY_REQUIREMENTS.items():
        assert tuple(extras.get(capability, ())) == lines, f"pyproject.toml's [{capability}] extra"
    assert tuple(extras["runtime"]) == requirements_for(set(CAPABILITY_REQUIREMENTS))


def test_a_used_capability_whose_package_is_missing_is_named_with_the_package(tmp_path):
    fake_distribution(tmp_path, "fastapi", "0.163.2", "starlette>=0.40")
    fake_distribution(tmp_path, "starlette", "1.10.0")
    fake_distribution(tmp_path, "redis", "8.1.0")

    unmet = install.prune(tmp_path, BundlingTarget(), ["fastapi==0.163.2", "redis==8.1.0"],
                          needs={"http": ("fastapi>=0.110,<1",), "auth-verify": ("pyjwt[crypto]>=2.8,<3",)},
                          unused=("redis>=5,<9",))

    assert unmet == ["pyjwt[crypto]<3,>=2.8 (needed by the auth-verify capability of fastapi_lambda) is not installed"]
    assert not (tmp_path / "redis-8.1.0.dist-info").exists() and not (tmp_path / "redis").exists(), \
        "only the unused cache capability needed redis"
    assert (tmp_path / "starlette-1.10.0.dist-info").is_dir()


def test_what_an_unused_capability_pulls_in_stays_when_the_app_needs_it_too(tmp_path):
    fake_distribution(tmp_path, "myapp-client", "1.0", "cryptography>=40")
    fake_distribution(tmp_path, "cryptography", "50.0.2", "cffi>=1")
    fake_distribution(tmp_path, "cffi", "2.1.1")
    fake_distribution(tmp_path, "pyjwt", "2.15.1")

    install.prune(tmp_path, BundlingTarget(), ["myapp-client==1.0", "cryptography==50.0.2", "cffi==2.1.1",
                                               "pyjwt==2.15.1"], needs={}, unused=("pyjwt[crypto]>=2.8,<3",))

    left = sorted(p.name for p in tmp_path.glob("*.dist-info"))
    assert left == ["cffi-2.1.1.dist-info", "cryptography-50.0.2.dist-info", "myapp_client-1.0.dist-info"]


# --- the real layers of a bundled synth: what each function ships -----------------------------------

#: A task registry that does not import FastAPI: its worker serves no HTTP and ships no web framework.
JOBS = '''from fastapi_lambda.tasks import TaskRegistry
from pydantic import BaseModel

registry = TaskRegistry()


class Add(BaseModel):
    a: int
    b: int


@registry.task("add", Add)
def add(payload: Add, envelope: object) -> dict:
    return {"sum": payload.a + payload.b}
'''


@dataclass
class Bundled:
    """A function of a bundled synth: its variables, capabilities and asset folders."""
    name: str
    environment: dict[str, str]
    capabilities: frozenset[str]
    code: Path
    layer: Path

    @property
    def distributions(self) -> set[str]:
        return {p.name.split("-")[0].lower().replace("_", "-") for p in (self.layer / "python").glob("*.dist-info")}


def bundled_functions(outdir: Path) -> dict[str, Bundled]:
    """Every function with a dependency layer in the cloud assembly at ``outdir``, by stack/logical id."""
    found = {}
    for template_file in outdir.glob("*.template.json"):
        resources = json.loads(template_file.read_text())["Resources"]
        for name, resource in resources.items():
            properties = resource["Properties"]
            if resource["Type"] != "AWS::Lambda::Function" or "Layers" not in properties or is_release_hook(resource):
                continue
            layer = resources[properties["Layers"][0]["Ref"]]["Properties"]["Content"]["S3Key"]
            variables = properties["Environment"]["Variables"]
            serves_http = properties["Handler"] != GENERIC_HANDLER or APP_VARIABLE in variables
            found[f"{template_file.name.split('.')[0]}/{name}"] = Bundled(
                name=name, environment=variables, capabilities=capabilities_of(variables, serves_http=serves_http),
                code=outdir / f"asset.{properties['Code']['S3Key'].removesuffix('.zip')}",
                layer=outdir / f"asset.{layer.removesuffix('.zip')}")
    return found


@pytest.fixture(scope="session")
def bundled(tmp_path_factory) -> dict[str, Bundled]:
    """The dev stack built for this machine, and functions with the capabilities dev leaves off (a cache, token
    verification, a worker without HTTP), synthesized with bundling on. One pip install for all (the bundler reuses
    it for every dependency set of the same lock), then one pruned copy per set."""
    if find_python(HOST_TARGET.python_version) is None:
        pytest.skip(bundling.missing_interpreter_message(HOST_TARGET.python_version))
    root = tmp_path_factory.mktemp("bundled")
    context = read_cdk_json_context()
    context["environments"]["dev"].setdefault("function", {})["architecture"] = HOST_ARCHITECTURE
    dev = make_app({**context, "skip_bundling": "false", "env": "dev"}, outdir=root / "dev")
    build_stacks(dev)
    dev.synth()

    source = root / "src"
    shutil.copytree(LAMBDA_SRC, source, ignore=shutil.ignore_patterns("__pycache__", "fastapi_lambda"))
    (source / "jobs.py").write_text(JOBS)
    others = App(outdir=str(root / "others"), builtin_cloud_formation_validation=False)
    stack = Stack(others, "Capabilities")
    pool = DependenciesLayer(stack, "Dependencies", source=source, target=HOST_TARGET)
    UserPool(stack, "Identity").configure(
        FastApiFunction(stack, "Verifying", source=source, target=HOST_TARGET, dependencies=pool), verify_tokens=True)
    # What ValkeyCache.configure() sets; a network is not needed to bundle.
    FastApiFunction(stack, "Cached", source=source, target=HOST_TARGET, dependencies=pool).add_environment(
        CACHE_HOST_VARIABLE, "cache.internal")
    ServiceFunction(stack, "Worker", source=source, target=HOST_TARGET, dependencies=pool, tasks="jobs:registry")
    others.synth()
    return {**bundled_functions(root / "dev"), **bundled_functions(root / "others")}


@pytest.mark.slow
def test_no_function_ships_what_its_capabilities_do_not_use(bundled):
    # The dev environment has no cache and lets the gateway verify tokens: none of its functions may ship redis or
    # cryptography; the functions that use them must.
    owners = {"redis": "cache", "cryptography": "auth-verify", "pyjwt": "auth-verify", "cffi": "auth-verify",
              "starlette": {"http", "parameters"}}
    checked = set()
    for name, function in bundled.items():
        for package, capability in owners.items():
            used = bool(function.capabilities & ({capability} if isinstance(capability, str) else capability))
            assert (package in function.distributions) == used, \
                f"{name} ({', '.join(sorted(function.capabilities))}): {package} {'missing' if used else 'shipped'}"
            checked.add((package, used))
    dev = [f for n, f in bundled.items() if n.startswith("fastapi-lambda-dev/")]
    assert len(dev) == 3 and all(  # the API, the worker and the billing service
not {"redis", "cryptography"} & f.distributions for f in dev)
    assert {(p, used) for p in owners for used in (True, False)} == checked, "every package seen shipped and not"


@pytest.mark.slow
def test_functions_with_the_same_set_share_one_layer_folder(bundled):
    layers = {name: f.layer for name, f in bundled.items()}

    assert len({layers[n] for n in layers if n.startswith("fastapi-lambda-dev/")}) == 1
    assert len(set(layers.values())) == 4  # dev's, the verifying API's, the cached API's, the worker's


@pytest.mark.slow
def test_each_bundle_imports_what_its_capabilities_use_under_the_target_python(bundled):
    probes = {
        "Verifying": "from jwt.algorithms import has_crypto; assert has_crypto",
        "Cached": "import redis.asyncio",
        "Worker": "import sys, fastapi_lambda.entry; assert 'fastapi' not in sys.modules and 'starlette' not in "
                  "sys.modules",
    }
    for name, probe in probes.items():
        function = next(f for f in bundled.values() if f.name.startswith(name))
        env = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1", "AWS_DEFAULT_REGION": "us-east-1",
               "PYTHONPATH": f"{function.code}{os.pathsep}{function.layer / 'python'}", **{
                   k: v for k, v in function.environment.items() if isinstance(v, str)}}
        done = subprocess.run([*host_python(), "-s", "-c", probe], capture_output=True,
                              text=True, env=env, cwd=function.code, timeout=120)
        assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"


def test_capabilities_the_variables_cannot_show_are_declared_and_checked():
    stack = Stack(App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False), "Declared")
    plain = ServiceFunction(stack, "Plain", tasks="service.tasks:registry")
    web = ServiceFunction(stack, "Web", tasks="service.tasks:registry", capabilities=("http",))
    template_of(stack)  # synthesis chooses the layers

    assert plain.capabilities == {"core", "tasks", "tracing"} and web.capabilities == {"core", "http", "tasks", "tracing"}
    assert plain.dependency_layer is not web.dependency_layer
    with pytest.raises(ValueError, match=r"capabilities=\['redis'\] are not capabilities of fastapi_lambda; choose from "
                                         r"core, http, tasks, cache, auth-verify, parameters, tracing"):
        ServiceFunction(stack, "Wrong", capabilities=cast("tuple[Capability]", ("redis",)))  # wrong on purpose


# --- Powertools: only the subpackages the function's code reaches ------------------------------------------------

def fake_powertools(site: Path) -> Path:
    """A Powertools-shaped package: logging imports shared (relatively), shared imports the event handler only
    inside a function (the runtime's unreached edge), utilities.batch imports utilities.parser; the rest stands
    alone."""
    files = {
        "__init__.py": "",
        "logging/__init__.py": "from .logger import Logger\n",
        "logging/logger.py": "from ..shared import functions\n",
        "shared/__init__.py": "",
        "shared/functions.py": "def pydantic_to_dict(data):\n"
                               "    from aws_lambda_powertools.event_handler.openapi.compat import _model_dump\n",
        "event_handler/__init__.py": "", "event_handler/openapi/__init__.py": "",
        "event_handler/openapi/compat.py": "",
        "utilities/__init__.py": "",
        "utilities/batch/__init__.py": "import sys\nif 'pydantic' in sys.modules:\n"
                                       "    from aws_lambda_powertools.utilities.parser.models import SqsRecordModel\n",
        "utilities/parser/__init__.py": "", "utilities/parser/models.py": "",
        "utilities/idempotency/__init__.py": "", "utilities/feature_flags/__init__.py": "",
    }
    for name, text in files.items():
        path = site / "aws_lambda_powertools" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return site / "aws_lambda_powertools"


def test_powertools_keeps_what_the_runtime_reaches_and_leaves_the_rest(tmp_path):
    root = fake_powertools(tmp_path)

    removed = powertools_pruning.prune_powertools(
        tmp_path, ["aws_lambda_powertools.logging", "aws_lambda_powertools.utilities.batch"])

    assert removed == ["aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.feature_flags",
                       "aws_lambda_powertools.utilities.idempotency"]
    assert {p.name for p in root.iterdir()} == {"__init__.py", "logging", "shared", "utilities"}
    assert {p.name for p in (root / "utilities").iterdir()} == {"__init__.py", "batch", "parser"}


def test_powertools_keeps_what_the_apps_own_imports_reach_and_every_edge_then(tmp_path):
    root = fake_powertools(tmp_path)

    removed = powertools_pruning.prune_powertools(tmp_path, ["aws_lambda_powertools.logging"],
                                                  ["aws_lambda_powertools.utilities.feature_flags"])

    # The app may log pydantic events itself: the edge the runtime never takes is followed.
    assert (root / "event_handler" / "openapi" / "compat.py").is_file()
    assert (root / "utilities" / "feature_flags").is_dir()
    assert removed == ["aws_lambda_powertools.utilities.batch", "aws_lambda_powertools.utilities.idempotency",
                       "aws_lambda_powertools.utilities.parser"]


def test_the_apps_own_powertools_imports_are_found_and_change_the_layer_hash(tmp_path):
    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "__init__.py").write_text("")
    (tmp_path / "orders" / "main.py").write_text(
        "def handler():\n    from aws_lambda_powertools.utilities import idempotency\n")
    (tmp_path / "orders" / "models.py").write_text("from .main import handler\n")  # no Powertools
    (tmp_path / "fastapi_lambda").mkdir()
    (tmp_path / "fastapi_lambda" / "x.py").write_text("import aws_lambda_powertools.metrics\n")  # the table's
    (tmp_path / "requirements.txt").write_text("fastapi==0.163.2\n")

    found = powertools_pruning.app_imports(tmp_path, skip="fastapi_lambda")
    before = bundling.bundling_options("layer", source=tmp_path, target=HOST_TARGET).environment or {}
    (tmp_path / "orders" / "main.py").write_text("def handler():\n    pass\n")
    after = bundling.bundling_options("layer", source=tmp_path, target=HOST_TARGET).environment or {}

    assert found == {"aws_lambda_powertools.utilities", "aws_lambda_powertools.utilities.idempotency"}
    assert before["APP_POWERTOOLS"] != after["APP_POWERTOOLS"] == ""


def test_every_powertools_import_of_the_runtime_package_is_in_the_table():
    declared = {module for modules in POWERTOOLS_MODULES.values() for module in modules}
    imported = {name for path in target.RUNTIME_PACKAGE.glob("*.py")
                for name in powertools_pruning.imported_modules(path.read_text(), f"fastapi_lambda.{path.stem}",
                                                                is_package=False)
                if name.startswith("aws_lambda_powertools")}
    # A declared module, a name in it, or a package above it: anything else would be pruned from under the runtime.
    uncovered = {name for name in imported
                 if not any(name == d or name.startswith(d + ".") or d.startswith(name + ".") for d in declared)}

    assert imported and not uncovered, f"Powertools modules the runtime imports but the table omits: {uncovered}"
    assert powertools_modules(frozenset({"core"})) == (*POWERTOOLS_MODULES["core"], *POWERTOOLS_MODULES["tasks"])


#: Runs in a function's bundle under the target Python: what the runtime uses of Powertools must import and work.
POWERTOOLS_PROBE = """
import logging, os, sys
from fastapi_lambda import observability
observability.setup()
logging.getLogger("probe").warning("a line through Powertools Logger", extra={"k": 1})
assert observability.state.logger is not None
observability.count("Probe")
observability.finish()
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
record = {"messageId": "m1", "receiptHandle": "r", "body": "{}", "attributes": {}, "messageAttributes": {},
          "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"}
assert process_partial_response({"Records": [record]}, lambda record: None, BatchProcessor(EventType.SQS), None) \
    == {"batchItemFailures": []}
if "parameters" in sys.argv:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
if "tracing" in sys.argv:
    observability.trace_aws()
    assert type(observability.tracer.get()).__name__ == "Tracer"
"""


@pytest.fixture(scope="session")
def runtime_sdk(tmp_path_factory) -> Path:
    """boto3 and its dependencies (pure Python) from the test environment: what Lambda's runtime provides."""
    import boto3

    folder = tmp_path_factory.mktemp("runtime")
    site = Path(boto3.__file__).parents[1]
    for name in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"):
        (folder / name).symlink_to(site / name)
    return folder


@pytest.mark.slow
def test_each_layer_leaves_out_the_powertools_its_functions_never_reach_and_serves_what_they_do(bundled, runtime_sdk):
    for name, function in bundled.items():
        root = function.layer / "python" / "aws_lambda_powertools"
        assert not (root / "event_handler").exists() and not (root / "utilities" / "idempotency").exists(), name
        assert (root / "utilities" / "batch").is_dir(), name  # tasks needs no package: in every layer
        assert (root / "utilities" / "parameters").is_dir() == ("parameters" in function.capabilities), name
        env = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_LAMBDA_FUNCTION_NAME": "probe",
               "PYTHONPATH": os.pathsep.join(map(str, (function.code, function.layer / "python", runtime_sdk)))}
        done = subprocess.run([*host_python(), "-s", "-c", POWERTOOLS_PROBE,
                               *sorted(function.capabilities)], capture_output=True, text=True, env=env,
                              cwd=function.code, timeout=120)
        assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
