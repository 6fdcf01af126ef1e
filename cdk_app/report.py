"""Summary of a synthesized cloud assembly: one line per environment, after cfn-lint and checkov.

Run after ``cdk synth`` (``make synth`` does both): ``python -m cdk_app.report cdk.out``.
Exits non-zero when cfn-lint reports anything, when checkov fails a check, or when a check
is skipped without a reason, so the main job fails on each. cdk-nag and the deploy preflight
already ran inside synth (an error fails synth); this counts their acknowledgements per rule
pack, the preflight's warnings (account-dependent limits) and CDK's own warnings from the
assembly, and lists what ``cdk destroy`` leaves behind.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from zipfile import ZIP_DEFLATED, ZipFile

from fastapi_lambda.constants import SMOKE_TEST_HANDLER, WARMUP_MARKER

from cdk_app.assembly import StackTemplate, listed
from cdk_app.shapes import is_object

ACKNOWLEDGED = "aws:cdk:acknowledged-rules"
CDK_WARNING = "aws:cdk:warning"
PREFLIGHT = "Preflight"
#: DeletionPolicy values that keep a resource (or a snapshot of it) after the stack is deleted.
KEPT = ("Retain", "RetainExceptOnCreate", "Snapshot")
#: What a resource left behind by ``cdk destroy`` keeps costing (see each service's pricing page).
BILLING = {
    "AWS::Logs::LogGroup": "stored log data per GB-month, until its retention expires",
    "AWS::S3::Bucket": "stored objects and versions per GB-month",
    "AWS::DynamoDB::Table": "stored items per GB-month, and continuous backups with point-in-time recovery",
    "AWS::DynamoDB::GlobalTable": "stored items per GB-month, and continuous backups with point-in-time recovery",
    "AWS::ElastiCache::ReplicationGroup": "its nodes per hour while it runs (retained: it keeps running)",
    "AWS::ElastiCache::ServerlessCache": "stored data and ECPUs while it runs (retained: it keeps running)",
    "AWS::Cognito::UserPool": "monthly active users (Plus plan per user); nothing while nobody signs in",
    "AWS::KMS::Key": "1 USD a month until the key is scheduled for deletion",
    "AWS::SecretsManager::Secret": "0.40 USD a month per secret",
    "AWS::Lambda::LayerVersion": "code storage (free up to 75 GB per region)",
    "AWS::SQS::Queue": "nothing while idle; messages kept up to their retention",
    "AWS::IAM::Role": "nothing",
    "AWS::ApiGateway::Account": "nothing (the region's API Gateway logging setting)",
}
#: cfn-lint takes seconds on our templates; minutes means it hangs, and CI should say so, not wait.
CFN_LINT_TIMEOUT_SECONDS = 300
#: checkov takes about 15 s on the three templates.
CHECKOV_TIMEOUT_SECONDS = 300
#: ``make setup`` installs checkov into a venv of its own beside the project's: it pins many packages of its own.
CHECKOV_VENV = ".venv-checkov"
#: What checkov reports for a skip whose metadata has no comment.
CHECKOV_NO_COMMENT = "No comment provided"
#: A reason (acknowledgement or skip) says why in a sentence: at least this many words.
MIN_REASON_WORDS = 12


class ReportError(RuntimeError):
    """A scanner could not run; the message says why and what to do."""


@dataclass
class StackSummary:
    stack: str
    resources: int
    api: str
    runtime: str
    memory: int
    timeout: int
    cold_start: str
    acknowledged: Counter[str]
    lint_errors: int
    lint_warnings: int
    checkov: CheckovCounts
    functions: list[FunctionSize] = field(default_factory=list)
    preflight_warnings: int = 0
    cdk_warnings: int = 0
    release: str = "direct"  # how the API function's alias moves to a new version
    packaging: str = "zip"
    retained: list[tuple[str, str]] = field(default_factory=list)  # (type, logical id) kept by cdk destroy
    edge: str = ""  # the services behind the API and its domain


@dataclass(frozen=True)
class FunctionSize:
    """What one function deploys, code and layers together: zipped (what Lambda stores and fetches at a cold
    start) and unzipped (what counts against its 250 MB limit), in bytes."""
    function: str
    zipped: int
    unzipped: int
    layers: tuple[str, ...] = ()
    #: Layers outside the assembly (a published ARN, e.g. ADOT's): not counted.
    external_layers: int = 0


@dataclass
class CheckovCounts:
    """checkov's results on one template; ``unexplained`` lists the skips that give no reason."""
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    unexplained: list[str] = field(default_factory=list)


def _run(tool: str, command: list[str], timeout: int, ok_codes: tuple[int, ...]) -> str:
    """The standard output of a scanner, or a :class:`ReportError` saying why there is none."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ReportError(f"{tool} did not finish within {timeout} s and was stopped; "
                          f"run it alone to see where it hangs: {' '.join(command)}") from None
    if done.returncode not in ok_codes:
        raise ReportError(f"{tool} failed: {done.stderr.strip()}")
    return done.stdout


def cfn_lint(*templates: Path) -> dict[str, Counter[str]]:
    """cfn-lint findings per template file name, counted by level (settings from .cfnlintrc.yaml).

    One cfn-lint process for all templates: its start-up costs more than linting one.
    It is the one installed beside this Python (``make setup`` puts it in the venv).
    """
    cli = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    if cli is None:
        raise ReportError(f"cfn-lint is not installed for {sys.executable}; install it with `make setup` "
                          f"or `{sys.executable} -m pip install -r requirements-dev.txt`.")
    output = _run("cfn-lint", [cli, "--format", "json", *map(str, templates)], CFN_LINT_TIMEOUT_SECONDS,
                  ok_codes=(0, 2, 4, 6, 8, 10, 12, 14))  # cfn-lint's exit code is a bitmask of levels
    counts: dict[str, Counter[str]] = {template.name: Counter() for template in templates}
    for finding in json.loads(output or "[]"):
        name = Path(finding["Filename"]).name
        counts[name][finding["Level"]] += 1
        line = finding["Location"]["Start"]["LineNumber"]
        print(f"  cfn-lint {finding['Rule']['Id']} {name}:{line}: {finding['Message']}")
    return counts


def _metadata(assembly: Path, stack: str) -> dict[str, list[dict[str, Any]]]:
    path = assembly / f"{stack}.metadata.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def checkov_cli() -> Path:
    """The checkov ``make setup`` installed (``$CHECKOV`` names another)."""
    named = os.environ.get("CHECKOV")
    cli = Path(named) if named else Path(sys.executable).parents[2] / CHECKOV_VENV / "bin" / "checkov"
    if not cli.is_file():
        raise ReportError(f"checkov is not installed at {cli}; install it with `make setup` (a venv of its own, "
                          f"{CHECKOV_VENV}, from requirements-checkov.txt) or name yours in $CHECKOV.")
    return cli


def _skip_reason_missing(reason: str | None) -> bool:
    return not reason or reason == CHECKOV_NO_COMMENT or len(reason.split()) < MIN_REASON_WORDS


def checkov(*templates: Path) -> dict[str, CheckovCounts]:
    """checkov's CloudFormation checks on each template (one run), counted per template file name.

    A check is skipped only by the resource's own metadata (``Metadata.checkov.skip``) and must
    say why; each failure and each skip without a reason is printed.
    """
    command = [str(checkov_cli()), "--framework", "cloudformation", "--skip-download", "--output", "json",
               *(argument for template in templates for argument in ("--file", str(template)))]
    output = _run("checkov", command, CHECKOV_TIMEOUT_SECONDS, ok_codes=(0, 1))  # 1: some check failed
    reports: Any = json.loads(output or "[]")  # one report per framework: a list, or the only one
    batch: list[dict[str, Any]] = [reports] if is_object(reports) else reports
    counts = {template.name: CheckovCounts() for template in templates}
    for report in batch:
        if report.get("summary", {}).get("parsing_errors"):
            raise ReportError(f"checkov could not parse {report['results'].get('parsing_errors')}")
        results = report.get("results", {})
        for check in results.get("passed_checks", []):
            counts[Path(check["file_path"]).name].passed += 1
        for check in results.get("failed_checks", []):
            name = Path(check["file_path"]).name
            counts[name].failed += 1
            print(f"  checkov {check['check_id']} {name} {check['resource']}: {check['check_name']}")
        for check in results.get("skipped_checks", []):
            name = Path(check["file_path"]).name
            counts[name].skipped += 1
            if _skip_reason_missing(check["check_result"].get("suppress_comment")):
                counts[name].unexplained.append(f"{check['check_id']} {check['resource']}")
                print(f"  checkov {check['check_id']} {name} {check['resource']}: skipped without a reason")
    return counts


def acknowledgement_counts(assembly: Path, stack: str) -> Counter[str]:
    """How many findings each cdk-nag pack has acknowledged in a stack (one per rule and resource)."""
    rules = (rule.removeprefix("Annotation::") for entries in _metadata(assembly, stack).values()
             for entry in entries if entry["type"] == ACKNOWLEDGED for rule in entry["data"])
    return Counter(PREFLIGHT if rule.startswith(f"{PREFLIGHT}::") else rule.split("-", 1)[0] for rule in rules)


def acknowledgements(assembly: Path, stack: str) -> dict[str, str]:
    """The cdk-nag rules acknowledged in a stack, with their reasons."""
    return {rule: reason for entries in _metadata(assembly, stack).values() for entry in entries
            if entry["type"] == ACKNOWLEDGED for rule, reason in entry["data"].items()}


def cdk_warnings(assembly: Path, stack: str) -> list[str]:
    """CDK's own warnings on a stack's constructs (what ``cdk synth --strict`` fails on)."""
    return [f"{path}: {entry['data']}" for path, entries in _metadata(assembly, stack).items() for entry in entries
            if entry["type"] == CDK_WARNING]


def preflight_findings(assembly: Path) -> dict[str, list[dict[str, Any]]]:
    """The preflight's violations per template file name (warnings; an error has already failed synth)."""
    report = assembly / "validation-report.json"
    found: dict[str, list[dict[str, Any]]] = {}
    plugins: list[dict[str, Any]] = json.loads(report.read_text()).get("pluginReports", []) if report.is_file() else []
    for plugin in plugins:
        if plugin.get("pluginName") != PREFLIGHT:
            continue
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                resource: dict[str, Any] = construct.get("cloudFormationResource") or {}
                template = resource.get("templatePath", "")
                found.setdefault(Path(template).name, []).append(violation)
    return found


def retained(resources: dict[str, Any]) -> list[tuple[str, str]]:
    """(type, logical id) of each resource ``cdk destroy`` leaves in the account."""
    return sorted((r["Type"], name) for name, r in resources.items() if r.get("DeletionPolicy") in KEPT)


class _Counter:
    """A write-only stream that only counts: the size of a zip without keeping it."""
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@functools.cache
def asset_size(folder: Path) -> tuple[int, int]:
    """(zipped, unzipped) bytes of an asset folder, zipped as the CDK CLI publishes it (deflate, level 9)."""
    sink = _Counter()
    unzipped = 0
    with ZipFile(sink, "w", ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                unzipped += path.stat().st_size
                archive.write(path, path.relative_to(folder).as_posix())
    return sink.size, unzipped


def _asset_folder(assembly: Path, s3_key: object) -> Path | None:
    """The assembly's folder of an asset referenced by its S3 key (``<hash>.zip``), if it is one."""
    if not isinstance(s3_key, str):
        return None
    folder = assembly / f"asset.{s3_key.removesuffix('.zip')}"
    return folder if folder.is_dir() else None


def function_sizes(assembly: Path, resources: dict[str, Any]) -> list[FunctionSize]:
    """Code plus layers of each function with layers (this library's), from the assembly's asset folders."""
    sizes: list[FunctionSize] = []
    for name, resource in resources.items():
        properties: dict[str, Any] = resource["Properties"] if resource["Type"] == "AWS::Lambda::Function" else {}
        if "Layers" not in properties or properties.get("Handler") == SMOKE_TEST_HANDLER:
            continue  # a release hook runs on the layer of the function it releases: counted there
        folders = [_asset_folder(assembly, properties["Code"].get("S3Key"))]
        layers: list[str] = []
        external = 0
        for layer in properties["Layers"]:
            layer_id: str | None = cast("dict[str, Any]", layer).get("Ref") if isinstance(layer, dict) else None
            content: dict[str, Any] = resources[layer_id]["Properties"]["Content"] if layer_id in resources else {}
            folder = _asset_folder(assembly, content.get("S3Key"))
            if folder is None:
                external += 1
            else:
                layers.append(cast(str, layer_id))  # found in resources above, so not None
                folders.append(folder)
        measured = [asset_size(folder) for folder in folders if folder is not None]
        sizes.append(FunctionSize(function=re.sub(r"Function[0-9A-F]{8}$", "", name),
                                  zipped=sum(z for z, _ in measured), unzipped=sum(u for _, u in measured),
                                  layers=tuple(layers), external_layers=external))
    return sizes


def _warmup_rules(resources: dict[str, Any], function_id: str) -> list[str]:
    """The EventBridge rules that warm the function: a target invokes it (directly, or its alias or a version)
    with the warmup marker in its input. A service's own schedule, or another function's warmup, is not one."""
    stack = StackTemplate("", {"Resources": resources})
    return [rule for rule, props in stack.of_type("AWS::Events::Rule").items()
            if any(function_id in stack.functions_in(target.get("Arn")) and WARMUP_MARKER in json.dumps(target.get("Input"))
                   for target in listed(props.get("Targets")))]


def _cold_start(resources: dict[str, Any], function: dict[str, Any]) -> str:
    """The strategy as the template shows it, with the app's import mode."""
    mode = function.get("Environment", {}).get("Variables", {}).get("IMPORT_MODE", "?")
    alias = _api_resource(resources, "AWS::Lambda::Alias")
    scaling = [r["Properties"] for r in resources.values()
               if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"]
    rules = _warmup_rules(resources, _api_resource_id(resources, "AWS::Lambda::Function"))
    if "ProvisionedConcurrencyConfig" in alias:
        bounds = f"{scaling[0]['MinCapacity']}-{scaling[0]['MaxCapacity']}" if scaling else "fixed"
        strategy = f"provisioned {bounds}"
    elif "SnapStart" in function:
        strategy = "snapstart"
    elif rules:
        strategy = "warmup"
    else:
        strategy = "none"
    return f"{strategy}{' +warmup' if rules and strategy != 'warmup' else ''}, {mode}"


def _release(resources: dict[str, Any]) -> str:
    """How the API function's alias moves to a new version, as the template shows it: CodeDeploy's shift (or
    ``direct``: CloudFormation moves it at once, no rollback), with ``+smoke`` when hooks test the new version."""
    aliases: dict[str, dict[str, Any]] = {name: r for name, r in resources.items() if r["Type"] == "AWS::Lambda::Alias"}
    alias = next((r for name, r in aliases.items() if name.startswith("Api")), next(iter(aliases.values()), dict[str, Any]()))
    update = alias.get("UpdatePolicy", {}).get("CodeDeployLambdaAliasUpdate")
    if not update:
        return "direct"
    config = resources[update["DeploymentGroupName"]["Ref"]]["Properties"]["DeploymentConfigName"]
    if isinstance(config, str):  # one of CodeDeploy's own, e.g. CodeDeployDefault.LambdaAllAtOnce
        shift = config.removeprefix("CodeDeployDefault.Lambda")
        shift = "all-at-once" if shift == "AllAtOnce" else shift
    else:
        routing = resources[config["Ref"]]["Properties"]["TrafficRoutingConfig"]
        if "TimeBasedCanary" in routing:
            step = routing["TimeBasedCanary"]
            shift = f"canary {step['CanaryPercentage']}% +{step['CanaryInterval']}m"
        else:
            step = routing["TimeBasedLinear"]
            shift = f"linear {step['LinearPercentage']}%/{step['LinearInterval']}m"
    return shift + (" +smoke" if "BeforeAllowTrafficHook" in update else "")


def _api_resource_id(resources: dict[str, Any], resource_type: str) -> str:
    """The API function's resource of a type (FastApiStack names it "Api..."; the worker's is "TasksWorker...")."""
    found = [name for name, r in resources.items() if r["Type"] == resource_type]
    return next((name for name in found if name.startswith("Api")), found[0])


def _api_resource(resources: dict[str, Any], resource_type: str) -> dict[str, Any]:
    """The properties of :func:`_api_resource_id`'s resource."""
    return resources[_api_resource_id(resources, resource_type)]["Properties"]


def edge(resources: dict[str, Any]) -> str:
    """The prefixes the API's functions serve ("/" and each service's ``FASTAPI_LAMBDA_ROOT_PATH``), and the domain."""
    mapped = [r["Properties"] for r in resources.values() if r["Type"] in (
        "AWS::ApiGatewayV2::ApiMapping", "AWS::ApiGateway::BasePathMapping")]
    base = next((m.get("ApiMappingKey") or m.get("BasePath") or "" for m in mapped), "")
    roots = (r["Properties"].get("Environment", {}).get("Variables", {}).get("FASTAPI_LAMBDA_ROOT_PATH", "")
             for r in resources.values() if r["Type"] == "AWS::Lambda::Function")
    prefixes = ["/", *sorted(p for p in (root.removeprefix(f"/{base}" if base else "") for root in roots) if p)]
    domains = [r["Properties"]["DomainName"] for r in resources.values()
               if r["Type"] in ("AWS::ApiGatewayV2::DomainName", "AWS::ApiGateway::DomainName")]
    domain = f"https://{domains[0]}/{base}" if domains else "execute-api URL"
    return f"services {', '.join(prefixes)}; domain {domain}"


def template_path(assembly: Path, artifact: dict[str, Any]) -> Path:
    return assembly / artifact["properties"]["templateFile"]


def summarize(assembly: Path, stack: str, artifact: dict[str, Any], levels: Counter[str],
              scanned: CheckovCounts, preflight: list[dict[str, Any]] | None = None) -> StackSummary:
    resources = json.loads(template_path(assembly, artifact).read_text())["Resources"]
    types = Counter(r["Type"] for r in resources.values())
    function = _api_resource(resources, "AWS::Lambda::Function")
    return StackSummary(
        stack=stack,
        resources=len(resources),
        api="HTTP API" if types["AWS::ApiGatewayV2::Api"] else "REST API" if types["AWS::ApiGateway::RestApi"] else "-",
        runtime=f"{function.get('Runtime', 'image')}/{function['Architectures'][0]}",
        memory=function["MemorySize"],
        cold_start=_cold_start(resources, function),
        release=_release(resources),
        packaging="image" if function.get("PackageType") == "Image" else "zip",
        timeout=function["Timeout"],
        acknowledged=acknowledgement_counts(assembly, stack),
        lint_errors=levels["Error"],
        lint_warnings=levels["Warning"] + levels["Informational"],
        checkov=scanned,
        functions=function_sizes(assembly, resources),
        preflight_warnings=len(preflight or []),
        cdk_warnings=len(cdk_warnings(assembly, stack)),
        retained=retained(resources),
        edge=edge(resources),
    )


def _sizes(functions: list[FunctionSize]) -> str:
    """``Api 7.9/26.8, TasksWorker 7.9/26.8`` (MB); ``+1 ext.`` counts a layer outside the assembly."""
    return ", ".join(f"{f.function} {f.zipped / 1e6:.1f}/{f.unzipped / 1e6:.1f}"
                     + (f" +{f.external_layers} ext." if f.external_layers else "") for f in functions) or "-"


def main(argv: list[str]) -> int:
    assembly = Path(argv[0] if argv else "cdk.out")
    manifest = assembly / "manifest.json"
    artifacts: dict[str, Any] = json.loads(manifest.read_text())["artifacts"] if manifest.is_file() else {}
    stacks = {name: a for name, a in artifacts.items() if a["type"] == "aws:cloudformation:stack"}
    if not stacks:
        print(f"No stacks in {assembly}; run cdk synth first.", file=sys.stderr)
        return 1
    templates = [template_path(assembly, artifact) for artifact in stacks.values()]
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:  # two processes, each ~20 s: side by side
            linting, scanning = pool.submit(cfn_lint, *templates), pool.submit(checkov, *templates)
            lint, scanned = linting.result(), scanning.result()
    except ReportError as error:
        print(error, file=sys.stderr)  # one line that says what to do; a traceback would bury it
        return 1
    preflight = preflight_findings(assembly)
    rows = [summarize(assembly, name, artifact, lint[template.name], scanned[template.name],
                      preflight.get(template.name))
            for (name, artifact), template in zip(stacks.items(), templates, strict=True)]
    header = f"{'stack':<24} {'resources':>9} {'api':<9} {'runtime':<17} {'memory':>6} {'timeout':>7} " \
             f"{'cold start':<25} {'release':<22} {'pkg':<5} {'cdk-nag':<17} {'preflight':<23} {'checkov':<23} " \
             f"{'cfn-lint':<18} {'CDK warn.':>9} {'retained':>8}  {'function: code+layers, zipped/unzipped MB'}"
    print(header)
    print("-" * len(header))
    for r in rows:
        nag = f"pass ({r.acknowledged['AwsSolutions']}+{r.acknowledged['Serverless']} ack.)"
        checked = f"pass ({r.preflight_warnings} warn., {r.acknowledged[PREFLIGHT]} ack.)"
        scan = f"{r.checkov.passed} ok, {r.checkov.failed} fail, {r.checkov.skipped} skip"
        lint = f"{r.lint_errors} errors, {r.lint_warnings} warn."
        print(f"{r.stack:<24} {r.resources:>9} {r.api:<9} {r.runtime:<17} {r.memory:>5}M {r.timeout:>6}s "
              f"{r.cold_start:<25} {r.release:<22} {r.packaging:<5} {nag:<17} {checked:<23} {scan:<23} {lint:<18} "
              f"{r.cdk_warnings:>9} {len(r.retained):>8}  {_sizes(r.functions)}")
    for r in rows:
        print(f"{r.stack}: {r.edge}")
    print("cdk-nag: AwsSolutions+Serverless findings acknowledged; checkov: checks passed, failed, skipped "
          "(every skip with its reason in the resource's metadata).")
    for r in rows:
        if r.retained:
            print(f"{r.stack}: cdk destroy leaves {len(r.retained)} resource(s), which keep billing for:")
            for kind, name in r.retained:
                print(f"  {name} ({kind}): {BILLING.get(kind, 'see the service pricing page')}")
    problems = {"cfn-lint findings": [r.stack for r in rows if r.lint_errors or r.lint_warnings],
                "checkov failures": [r.stack for r in rows if r.checkov.failed],
                "checkov skips without a reason": [r.stack for r in rows if r.checkov.unexplained]}
    for problem, stacks_with_it in problems.items():
        if stacks_with_it:
            print(f"{problem} in: {', '.join(stacks_with_it)}", file=sys.stderr)
    if any(problems.values()):
        return 1
    print(f"{len(rows)} environment(s) synthesized; cdk-nag, the preflight, checkov and cfn-lint clean; "
          f"{sum(r.cdk_warnings for r in rows)} CDK warning(s), {sum(r.preflight_warnings for r in rows)} "
          "unacknowledged preflight warning(s).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
