"""Settings validation: every mistake is one line with where, what is allowed and how to fix it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Match

from cdk_app.bundling import BundlingError, LocalPythonBundler
from cdk_app.bundling import target as bundling_target
from cdk_app.settings import ConfigError, load_settings, read_cdk_json_context
from cdk_app.settings.choices import LOG_RETENTION_DAYS
from cdk_app.stack import build_stacks
from tests.infra.conftest import make_app, template_of

ROOT = Path(__file__).resolve().parents[2]
MEMORY_64_IN_PROD = ("environments.prod.function.memory_mb: 64 is not allowed (allowed: 128 to 10240). "
                     "Fix: set a whole number from 128 to 10240.")


def error_for(context) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(context)
    return str(caught.value)


def set_key(context, path: str, value) -> None:
    """Set ``environments.<path>`` (dotted) in ``context``."""
    *parents, key = path.split(".")
    node = context["environments"]
    for part in parents:
        node = node.setdefault(part, {})
    node[key] = value


def test_cdk_json_is_valid_and_has_the_three_environments(context):
    assert sorted(load_settings(context).environments) == ["dev", "prod", "staging"]


ONE_LINE_ERRORS = {
    "below the range": ("prod.function.memory_mb", 64, MEMORY_64_IN_PROD),
    "above the range": (
        "prod.function.memory_mb", 10241,
        "environments.prod.function.memory_mb: 10241 is not allowed (allowed: 128 to 10240). "
        "Fix: set a whole number from 128 to 10240."),
    "open range": (
        "dev.function.expected_duration_seconds", 0,
        "environments.dev.function.expected_duration_seconds: 0 is not allowed (allowed: more than 0 and at most "
        "900). Fix: set a number more than 0 and at most 900."),
    "literal": (
        "dev.function.architecture", "arm",
        'environments.dev.function.architecture: "arm" is not allowed (allowed: "arm64", "x86_64"). '
        'Fix: use one of the allowed values; the closest is "arm64".'),
    "literal, nothing close": (
        "staging.api.type", "graphql",
        'environments.staging.api.type: "graphql" is not allowed (allowed: "http", "rest"). '
        "Fix: use one of the allowed values."),
    "type": (
        "staging.function.memory_mb", "lots",
        'environments.staging.function.memory_mb: "lots" is not allowed (allowed: 128 to 10240). '
        "Fix: set a whole number from 128 to 10240."),
    "boolean": (
        "prod.termination_protection", "yes please",
        'environments.prod.termination_protection: "yes please" is not allowed (allowed: true or false). '
        "Fix: set true or false."),
    "pattern": (
        "prod.account", "12345",
        r'environments.prod.account: "12345" is not allowed (allowed: text matching ^\d{12}$). '
        'Fix: write it in that format, e.g. "123456789012".'),
    "unknown key": (
        "prod.function.memroy_mb", 2048,
        "environments.prod.function.memroy_mb: unknown key, set to 2048 (allowed keys: architecture, "
        "expected_duration_seconds, memory_mb, packaging, python_version, reserved_concurrency). "
        "Fix: rename it to memory_mb, or remove it."),
    "unknown key, nothing close": (
        "dev.owner", "team-a",
        'environments.dev.owner: unknown key, set to "team-a" (allowed keys: account, api, auth, bundling, cache, '
        "cold_start, config, function, log_retention_days, network, observability, region, release, removal_policy, "
        "services, "
        "tags, tasks, termination_protection). "
        "Fix: remove it or correct its spelling."),
    "missing": (
        "dev.api.cors", {"allow_credentials": False},
        "environments.dev.api.cors.allow_origins: missing (required: a list of 1 or more entries). "
        "Fix: add it: write a list of 1 or more entries."),
}


@pytest.mark.parametrize(("path", "value", "line"), ONE_LINE_ERRORS.values(), ids=ONE_LINE_ERRORS.keys())
def test_each_problem_is_one_line_with_the_allowed_values_and_the_fix(context, path, value, line):
    set_key(context, path, value)

    assert error_for(context) == line


#: Settings AWS would refuse at deploy, refused at synth with the service's own limit and the fix.
AWS_REFUSES = {
    "alarm email": ("prod.observability.alarm_emails", ["oncall@example"],
                    'environments.prod.observability.alarm_emails.0: "oncall@example" is not allowed: it is not an '
                    "email address SNS accepts (name@domain.tld, no spaces); write it as name@domain.tld."),
    "region typo": ("prod.region", "eu-wset-1",
                    "environments.prod.region: \"eu-wset-1\" is not allowed: it is not one of the 46 AWS regions this "
                    "library knows; did you mean 'eu-west-1'"),
    "domain prefix reserved word": ("dev.auth.domain_prefix", "aws-orders",
                                    "Cognito refuses it: 'Domain cannot contain reserved word: aws'"),
    "callback over http": ("dev.auth.callback_urls", ["http://app.example.com/callback"],
                           "Cognito requires HTTPS except for http://localhost"),
    "scope name": ("dev.auth.route_scopes", {"POST /tasks": ["tasks/write"]},
                   'environments.dev.auth.route_scopes.POST /tasks.0: "tasks/write" is not allowed: a scope name may '
                   "hold only printable ASCII except space"),
    "reserved tag": ("dev.tags", {"aws:owner": "me"}, "tag key 'aws:owner' starts with 'aws:', which is reserved"),
    "parameter name": ("dev.config.parameters", {"bad name": "x"},
                       "environments.dev.config.parameters.bad name: '/fastapi-lambda/dev/bad name' is not allowed: a "
                       "parameter name may hold only letters, digits and _ . -"),
    "secret name": ("dev.config.secrets", ["api key"], "environments.dev.config.secrets: "
                    "'fastapi-lambda/dev/api key' is not allowed: a secret name may hold only"),
    "schedule time zone": ("prod.cold_start.provisioned.schedules", [{"name": "business", "cron": "0 8 ? * MON-FRI *",
                                                                       "min": 1, "max": 2, "time_zone": "Europe/Berln"}],
                           "it is not an IANA time zone name; did you mean 'Europe/Berlin'"),
    "custom domain certificate": ("prod.auth.custom_domain", {"domain_name": "auth.example.com",
                                                              "certificate_arn": "arn:aws:acm:eu-west-1:123456789012:"
                                                                                 "certificate/abc"},
                                  "environments.prod.auth.custom_domain.certificate_arn"),
}


@pytest.mark.parametrize(("path", "value", "fragment"), AWS_REFUSES.values(), ids=AWS_REFUSES.keys())
def test_settings_aws_would_refuse_are_refused_at_synth(context, path, value, fragment):
    set_key(context, path, value)

    message = error_for(context)
    assert fragment in message
    assert len(message.splitlines()) == 1


def test_names_built_from_app_name_and_environment_must_fit_aws(context):
    context["environments"]["a-very-long-environment-name-" + "x" * 100] = context["environments"].pop("dev")

    message = error_for(context)
    assert "a stack name's length (1 to 128 characters). Fix: shorten app_name or the environment name." in message


def test_environment_names_are_stack_name_friendly(context):
    context["environments"]["qa_1"] = context["environments"].pop("dev")

    assert "environment name 'qa_1' must be lower-case letters, digits and single hyphens" in error_for(context)


def test_timeout_beyond_the_gateway_limit_is_refused_with_the_largest_valid_value(context):
    context["environments"]["prod"]["function"]["expected_duration_seconds"] = 26  # 31.2 s > REST's 29 s

    message = error_for(context)

    assert message.count("\n") == 0, "one line per problem"
    assert "environments.prod" in message
    assert "expected_duration_seconds=26 gives a 32 s timeout (120%), above the 29 s a REST API allows" in message
    assert "set function.expected_duration_seconds to 24 or less" in message


def test_http_api_allows_up_to_30_seconds(context):
    context["environments"]["dev"]["function"]["expected_duration_seconds"] = 25  # 30 s exactly

    assert load_settings(context).environments["dev"].function.timeout_seconds == 30


def test_log_retention_must_be_a_supported_value(context):
    context["environments"]["dev"]["log_retention_days"] = 10

    assert error_for(context) == (
        f"environments.dev.log_retention_days: 10 is not allowed (allowed: {', '.join(map(str, LOG_RETENTION_DAYS))})."
        " Fix: use one of the allowed values; the closest is 7.")


def test_cors_credentials_with_wildcard_origin_is_refused(context):
    context["environments"]["dev"]["api"]["cors"] = {"allow_origins": ["*"], "allow_credentials": True}

    assert error_for(context) == (
        "environments.dev.api.cors: allow_credentials=true with allow_origins ['*'] is refused by browsers; "
        "list the exact origins or set allow_credentials to false.")


def test_public_routes_default_to_the_apps_static_routes(context):
    assert load_settings(context).environments["staging"].api.public_routes == ["GET /", "GET /health"]


def test_public_routes_follow_the_gateways_rule(context):
    context["environments"]["staging"]["api"]["public_routes"] = ["GET /health", "get /docs"]

    message = error_for(context)

    assert ("environments.staging.api.public_routes.1: \"get /docs\" is not allowed: 'get /docs' is not a route; "
            "write 'METHOD /path'") in message
    assert "e.g. 'GET /health'" in message


def test_account_and_region_are_validated(context):
    context["environments"]["prod"]["account"] = "12345"
    context["environments"]["prod"]["region"] = "Europe"

    message = error_for(context)

    assert 'environments.prod.account: "12345" is not allowed' in message
    assert 'environments.prod.region: "Europe" is not allowed' in message


def test_every_problem_is_reported_at_once(context):
    context["environments"]["dev"]["api"]["type"] = "graphql"
    context["environments"]["prod"]["removal_policy"] = "keep"

    lines = error_for(context).splitlines()

    assert [line.split(":")[0] for line in lines] == ["environments.dev.api.type", "environments.prod.removal_policy"]


def test_unknown_environment_selection_lists_the_known_ones(context):
    with pytest.raises(ConfigError, match=r"-c env=qa: no such environment. Fix: use one of dev, prod, staging"):
        load_settings(context, only="qa")


def test_other_environments_problems_are_warnings_when_one_is_selected(context):
    set_key(context, "prod.function.memory_mb", 64)
    warnings = []

    settings = load_settings(context, only="dev", warn=warnings.append)

    assert list(settings.environments) == ["dev"]
    assert warnings == [MEMORY_64_IN_PROD]


def test_the_selected_environment_and_top_level_keys_still_fail(context):
    set_key(context, "prod.function.memory_mb", 64)
    with pytest.raises(ConfigError, match="environments.prod.function.memory_mb: 64"):
        load_settings(context, only="prod", warn=pytest.fail)

    context["app_name"] = "Bad Name"
    with pytest.raises(ConfigError, match=r'^app_name: "Bad Name" is not allowed'):
        load_settings(context, only="dev")


def test_env_context_limits_synth_to_one_stack():
    stacks = build_stacks(make_app({"env": "prod"}))

    assert list(stacks) == ["prod"]


def test_explicit_account_and_region_are_used():
    context = read_cdk_json_context()
    context["environments"]["prod"].update(account="123456789012", region="eu-west-1")

    stack = build_stacks(make_app({**context, "env": "prod"}))["prod"]

    assert (stack.account, stack.region) == ("123456789012", "eu-west-1")


def test_invalid_context_stops_synth():
    context = read_cdk_json_context()
    context["environments"]["dev"]["api"]["throttle_rate_limit"] = -5

    with pytest.raises(ConfigError, match=r"environments.dev.api.throttle_rate_limit: -5 is not allowed"):
        build_stacks(make_app(context))


def test_env_selection_synthesizes_it_and_warns_about_the_others(context, capsys):
    set_key(context, "prod.function.memory_mb", 64)

    stacks = build_stacks(make_app({**context, "env": "dev"}))

    assert list(stacks) == ["dev"]
    template_of(stacks["dev"]).resource_count_is("AWS::ApiGatewayV2::Api", 1)
    # (synth's own report may follow, e.g. preflight warnings: only the settings' lines are counted here)
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")] == [
        f"warning: {MEMORY_64_IN_PROD}"]


def run_app(context: dict, outdir: Path) -> subprocess.CompletedProcess:
    """``python app.py`` as the CDK CLI runs it: context and output folder in the environment."""
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(outdir)}
    return subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_entry_point_prints_one_line_per_problem_and_no_traceback(context, tmp_path):
    problems = [ONE_LINE_ERRORS["literal"], ONE_LINE_ERRORS["below the range"]]  # dev, then prod
    for path, value, _ in problems:
        set_key(context, path, value)

    done = run_app(context, tmp_path)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [line for _, _, line in problems]
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize(("value", "bundled"), [("true", False), ("false", True)])
def test_skip_bundling_setting(value, bundled):
    stack = build_stacks(make_app({"skip_bundling": value, "env": "dev", "strict_bundling": "false"}))["dev"]

    assert stack.bundling_required is bundled


@pytest.fixture
def no_target_python(monkeypatch):
    """Bundling on, no interpreter of the target Python, and a stand-in bundler (no pip) that counts builds."""
    built = []
    monkeypatch.setattr(bundling_target, "find_python", lambda version: None)

    def fake_bundle(self, output_dir, options=None, **_):
        (Path(output_dir) / self.kind).write_text("stand-in")
        built.append(self.kind)
        return True

    monkeypatch.setattr(LocalPythonBundler, "try_bundle", fake_bundle)
    return built


def bundled_app(strict: str):
    return make_app({"aws:cdk:bundling-stacks": ["**"], "skip_bundling": "false", "env": "dev",
                     "strict_bundling": strict})


def test_strict_bundling_fails_synth_without_the_target_python(no_target_python):
    with pytest.raises(BundlingError, match="No Python 3.13 interpreter"):
        build_stacks(bundled_app("true"))

    assert no_target_python == [], "strict mode must fail before building anything"


def test_without_strict_bundling_a_missing_python_is_a_warning(no_target_python):
    stack = build_stacks(bundled_app("false"))["dev"]

    Annotations.from_stack(stack).has_warning("*", Match.string_like_regexp("No Python 3.13 interpreter"))
    assert sorted(no_target_python) == ["code", "layer"]  # the layer is built at synthesis, for its capabilities
