"""The project's delivery: GitHub workflows linted offline and checked against the Makefile, cdk.json and the
deploy roles; and GitHubDeployRoles (trust, least privilege, a provider brought along, the delivery app)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App
from aws_cdk.assertions import Template

from cdk_app.compliance import add_compliance_checks
from cdk_app.delivery import (
    DEPLOY_BOOTSTRAP_ROLES,
    DeliveryError,
    DeliveryStack,
    GitHubDeployRoles,
    settings_from_context,
)
from cdk_app.settings import read_cdk_json_context

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONS = sorted(GITHUB.glob("actions/*/action.yml"))
BIN = Path(sys.executable).parent
ENVIRONMENTS = list(read_cdk_json_context()["environments"])
REPOSITORY = "example-org/fastapi-service"
PROVIDER_ARN = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    document.setdefault("on", document.pop(True, None))  # YAML 1.1 reads the key `on` as true
    return document


def workflow(name: str) -> dict[str, Any]:
    return load(GITHUB / "workflows" / name)


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    tool = BIN / command[0]
    assert tool.exists(), f"{tool} is missing: `make setup` installs it (requirements-dev.txt)"
    return subprocess.run([str(tool), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)


# --- the workflows, linted ------------------------------------------------------------------------

def test_actionlint_finds_nothing():
    result = run_tool("actionlint", "-no-color")

    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path):
    # The control: the same run over a copy with a job that needs one that does not exist.
    broken = tmp_path / ".github" / "workflows"
    broken.mkdir(parents=True)
    (broken / "deploy.yml").write_text((GITHUB / "workflows" / "deploy.yml").read_text()
                                       .replace("needs: staging", "needs: stagin"))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)

    result = subprocess.run([str(BIN / "actionlint"), "-no-color", str(broken / "deploy.yml")], cwd=tmp_path,
                            capture_output=True, text=True)

    assert result.returncode == 1 and 'needs job "stagin"' in result.stdout


def test_zizmor_finds_no_security_smell():
    result = run_tool("zizmor", "--offline", "--persona", "pedantic", "--no-progress", ".github")

    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_and_actions_match_githubs_schemas():
    workflows = run_tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS))
    actions = run_tool("check-jsonschema", "--builtin-schema", "vendor.github-actions", *map(str, ACTIONS))

    assert workflows.returncode == 0, workflows.stdout + workflows.stderr
    assert actions.returncode == 0, actions.stdout + actions.stderr


# --- the workflows, checked against this repository ----------------------------------------------

USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")


def uses_lines() -> list[tuple[str, str, str]]:
    return [(path.name, match.group(1), match.group(2)) for path in [*WORKFLOWS, *ACTIONS]
            for match in map(USES.match, path.read_text().splitlines()) if match]


def test_every_action_is_pinned_to_a_full_commit_with_its_version_beside_it():
    remote = [(file, ref, rest) for file, ref, rest in uses_lines() if not ref.startswith("./")]

    assert remote, "expected third-party actions"
    for file, ref, rest in remote:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{file}: {ref} is not pinned to a commit"
        assert re.fullmatch(r"\s*#\s*v\d+\.\d+\.\d+", rest), f"{file}: {ref} has no '# vX.Y.Z' comment"


def test_every_local_action_and_reusable_workflow_exists():
    local = {ref for _, ref, _ in uses_lines() if ref.startswith("./")}

    assert local
    for ref in local:
        target = ROOT / ref
        assert (target / "action.yml").exists() or target.is_file(), f"{ref} does not exist"


def steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(document.get("runs", {}).get("steps", []))
    for job in document.get("jobs", {}).values():
        found += job.get("steps", [])
    return found


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.MULTILINE))


def test_every_make_target_the_workflows_run_exists():
    called = {target for path in [*WORKFLOWS, *ACTIONS] for step in steps(load(path))
              for target in re.findall(r"\bmake\s+([a-z][\w-]*)", step.get("run", ""))}

    assert {"setup", "test", "synth"} <= called
    assert called <= make_targets(), f"not in the Makefile: {called - make_targets()}"


def test_nothing_runs_on_pull_request_target():
    # Such a workflow runs a fork's code with the base repository's secrets and write token.
    for path in WORKFLOWS:
        assert "pull_request_target" not in json.dumps(load(path)["on"]), path.name


def test_workflows_read_by_default_and_only_role_jobs_get_an_oidc_token():
    token_jobs = set()
    for path in WORKFLOWS:
        document = load(path)
        assert document["permissions"] == {"contents": "read"}, path.name
        for name, job in document["jobs"].items():
            if job.get("permissions", {}).get("id-token") == "write":
                token_jobs.add(f"{path.stem}.{name}")
                assumes = "uses" in job or any("configure-aws-credentials" in step.get("uses", "")
                                               for step in job["steps"])
                assert assumes, f"{path.name}: {name} gets an OIDC token but assumes no role"

    assert token_jobs == {"ci.diff", "deploy-environment.deploy", *(f"deploy.{name}" for name in ENVIRONMENTS)}


def test_deploys_promote_through_every_environment_in_order_each_in_its_github_environment():
    jobs = workflow("deploy.yml")["jobs"]
    order = [job["with"]["environment"] for job in jobs.values()]
    needs = [job.get("needs") for job in jobs.values()]
    deploy = workflow("deploy-environment.yml")["jobs"]["deploy"]

    assert order == ENVIRONMENTS  # every environment of cdk.json, in cdk.json's order
    assert needs == [None, *list(jobs)[:-1]]  # each waits for the one before: prod after staging
    assert all(job["uses"] == "./.github/workflows/deploy-environment.yml" for job in jobs.values())
    # The job's GitHub environment is what the token's sub names, so what the role trusts.
    assert deploy["environment"] == "${{ inputs.environment }}"
    commands = " ".join(step.get("run", "") for step in deploy["steps"])
    assert 'npx cdk deploy --all -c "env=$ENVIRONMENT"' in commands


def test_pull_request_diff_reads_with_the_diff_role_and_no_change_set():
    diff = workflow("ci.yml")["jobs"]["diff"]
    credentials = next(step for step in diff["steps"] if "configure-aws-credentials" in step.get("uses", ""))
    commands = " ".join(step.get("run", "") for step in diff["steps"])

    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DIFF_ROLE_ARN }}"
    assert "npx cdk diff --app cdk.out" in commands and "--no-change-set" in commands
    assert "github.event.pull_request.head.repo.full_name == github.repository" in diff["if"]


# --- GitHubDeployRoles -----------------------------------------------------------------------------

def synthesize(**props: Any) -> dict[str, Any]:
    app = App(builtin_cloud_formation_validation=False)
    stack = DeliveryStack(app, "Delivery", **{"repository": REPOSITORY, "environments": ENVIRONMENTS, **props})
    return dict(Template.from_stack(stack).to_json())


def render(value: Any) -> str:
    """A template string with its pseudo-parameters filled in (Fn::Join, Ref AWS::*)."""
    pseudo = {"AWS::Partition": "aws", "AWS::AccountId": "123456789012", "AWS::Region": "eu-west-1"}
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(part) for part in parts)
    return pseudo[value["Ref"]]


def roles(template: dict[str, Any]) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each role's sub condition → (its trust statement, the statements of its policies)."""
    resources = template["Resources"]
    found = {}
    for logical_id, role in resources.items():
        if role["Type"] != "AWS::IAM::Role":
            continue
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        statements = [statement for policy in resources.values() if policy["Type"] == "AWS::IAM::Policy"
                      and {"Ref": logical_id} in policy["Properties"]["Roles"]
                      for statement in policy["Properties"]["PolicyDocument"]["Statement"]]
        found[trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]] = (trust, statements)
    return found


def listed(value: Any) -> list[Any]:
    """A policy's Action or Resource as a list (one value is written alone)."""
    return value if isinstance(value, list) else [value]


def bootstrap_arns(*kinds: str) -> list[str]:
    return [f"arn:aws:iam::123456789012:role/cdk-hnb659fds-{kind}-123456789012-eu-west-1" for kind in kinds]


def test_each_environment_gets_a_role_only_its_github_environment_can_assume():
    found = roles(synthesize())

    assert set(found) == {*(f"repo:{REPOSITORY}:environment:{name}" for name in ENVIRONMENTS),
                          f"repo:{REPOSITORY}:pull_request"}
    for trust, _ in found.values():
        assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert trust["Condition"] == {"StringEquals": {  # exact matches: no StringLike, no wildcard
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": trust["Condition"]["StringEquals"][
                "token.actions.githubusercontent.com:sub"]}}


def test_deploy_roles_may_only_assume_the_bootstrap_roles_and_the_diff_role_only_the_lookup_role():
    found = roles(synthesize())

    for subject, (_, statements) in found.items():
        (statement,) = statements
        expected = ("lookup-role",) if subject.endswith(":pull_request") else DEPLOY_BOOTSTRAP_ROLES
        assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
        assert sorted(map(render, listed(statement["Resource"]))) == sorted(bootstrap_arns(*expected))


def test_the_github_provider_is_created_unless_one_is_given():
    created = synthesize()
    given = synthesize(provider_arn=PROVIDER_ARN)

    (provider,) = [r for r in created["Resources"].values() if r["Type"] == "AWS::IAM::OIDCProvider"]
    assert provider["Properties"]["Url"] == "https://token.actions.githubusercontent.com"
    assert provider["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]
    assert not [r for r in given["Resources"].values() if r["Type"] == "AWS::IAM::OIDCProvider"]
    for trust, _ in roles(given).values():
        assert trust["Principal"] == {"Federated": PROVIDER_ARN}


def test_a_custom_qualifier_and_regions_reach_the_bootstrap_role_arns():
    app = App(builtin_cloud_formation_validation=False)
    stack = DeliveryStack(app, "Delivery", repository=REPOSITORY, environments=["prod"], qualifier="team1")
    GitHubDeployRoles(stack, "Regions", repository=REPOSITORY, environments=["eu"], pull_request_diff=False,
                      regions=["eu-west-1", "eu-central-1"])
    template = Template.from_stack(stack).to_json()

    resources = {render(arn) for policy in template["Resources"].values() if policy["Type"] == "AWS::IAM::Policy"
                 for statement in policy["Properties"]["PolicyDocument"]["Statement"] for arn in listed(statement["Resource"])}
    assert "arn:aws:iam::123456789012:role/cdk-team1-deploy-role-123456789012-eu-west-1" in resources
    assert "arn:aws:iam::123456789012:role/cdk-hnb659fds-deploy-role-123456789012-eu-central-1" in resources


@pytest.mark.parametrize(("props", "named"), [
    ({"repository": "fastapi-service"}, "repository='fastapi-service'"),
    ({"repository": "org/repo/extra"}, "repository='org/repo/extra'"),
    ({"environments": []}, "environments is empty"),
    ({"environments": ["prod*"]}, "environment 'prod*'"),
    ({"environments": ["dev", "dev"]}, "name one environment twice"),
    ({"qualifier": "not a qualifier"}, "qualifier='not a qualifier'"),
])
def test_bad_props_are_refused_naming_the_prop_and_the_fix(props, named):
    with pytest.raises(DeliveryError, match=re.escape(named)):
        synthesize(**props)


def test_cdk_nag_passes_the_delivery_stack(tmp_path):
    app = App(builtin_cloud_formation_validation=False, outdir=str(tmp_path))
    DeliveryStack(app, "Delivery", repository=REPOSITORY, environments=ENVIRONMENTS)
    add_compliance_checks(app)

    app.synth()  # raises on any finding


def test_the_delivery_app_reads_its_settings_from_context_and_cdk_json():
    settings = settings_from_context({**read_cdk_json_context(), "github_repository": REPOSITORY,
                                      "github_oidc_provider_arn": PROVIDER_ARN})
    only_prod = settings_from_context({"github_repository": REPOSITORY, "delivery_environments": "prod, ",
                                       "@aws-cdk/core:bootstrapQualifier": "team1"})

    assert settings == {"repository": REPOSITORY, "environments": ENVIRONMENTS, "qualifier": "hnb659fds",
                        "provider_arn": PROVIDER_ARN, "stack_name": "fastapi-lambda-delivery"}
    assert only_prod["environments"] == ["prod"] and only_prod["qualifier"] == "team1"
    with pytest.raises(DeliveryError, match="github_repository is not set; pass -c github_repository="):
        settings_from_context({"environments": {"dev": {}}})


def test_the_documented_command_synthesizes_the_delivery_app_with_the_cdk_cli(tmp_path):
    # docs/delivery.md: npx cdk deploy --app ".venv/bin/python -m cdk_app.delivery" -c github_repository=…
    command = ["npx", "cdk", "synth", "--quiet", "--app", f"{sys.executable} -m cdk_app.delivery",
               "-c", f"github_repository={REPOSITORY}", "--output", str(tmp_path / "cdk.out")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "CDK_VALIDATION": "false"})

    assert result.returncode == 0, result.stderr
    template = json.loads((tmp_path / "cdk.out" / "fastapi-lambda-delivery.template.json").read_text())
    assert len(roles(template)) == len(ENVIRONMENTS) + 1
    assert set(template["Outputs"]) == {*(f"DeployRoleArn{name.capitalize()}" for name in ENVIRONMENTS),
                                        "DiffRoleArn"}
