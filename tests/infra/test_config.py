"""Settings validation: every mistake stops synth with where, what and how to fix it."""

from __future__ import annotations

import pytest

from cdk_app.config import ConfigError, load_settings, read_cdk_json_context, select_environments
from cdk_app.stack import build_stacks
from tests.infra.conftest import make_app


def error_for(context) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(context)
    return str(caught.value)


def test_cdk_json_is_valid_and_has_the_three_environments(context):
    assert sorted(load_settings(context).environments) == ["dev", "prod", "staging"]


def test_unknown_key_names_environment_key_and_allowed_keys(context):
    context["environments"]["prod"]["function"]["memroy_mb"] = 2048

    message = error_for(context)

    assert "environments.prod.function.memroy_mb: 2048" in message
    assert "Extra inputs are not permitted" in message
    assert "allowed keys are architecture, expected_duration_seconds, memory_mb" in message


def test_wrong_type_names_the_value_and_the_fix(context):
    context["environments"]["staging"]["function"]["memory_mb"] = "lots"

    message = error_for(context)

    assert 'environments.staging.function.memory_mb: "lots" is not allowed' in message
    assert "Fix: write a whole number" in message


def test_out_of_range_value(context):
    context["environments"]["dev"]["function"]["memory_mb"] = 64

    assert "environments.dev.function.memory_mb: 64 is not allowed: Input should be greater than or equal to 128" \
        in error_for(context)


def test_choice_lists_the_allowed_values(context):
    context["environments"]["dev"]["function"]["architecture"] = "arm"

    message = error_for(context)

    assert "environments.dev.function.architecture" in message and "'arm64' or 'x86_64'" in message


def test_timeout_beyond_the_gateway_limit_is_refused_with_the_largest_valid_value(context):
    context["environments"]["prod"]["function"]["expected_duration_seconds"] = 26  # 31.2 s > REST's 29 s

    message = error_for(context)

    assert message.count("\n") == 1, "one message per problem"
    assert "environments.prod" in message
    assert "expected_duration_seconds=26 gives a 32 s timeout (120%), above the 29 s a REST API allows" in message
    assert "set function.expected_duration_seconds to 24 or less" in message


def test_http_api_allows_up_to_30_seconds(context):
    context["environments"]["dev"]["function"]["expected_duration_seconds"] = 25  # 30 s exactly

    assert load_settings(context).environments["dev"].function.timeout_seconds == 30


def test_log_retention_must_be_a_supported_value(context):
    context["environments"]["dev"]["log_retention_days"] = 10

    assert "environments.dev.log_retention_days: 10 is not allowed: CloudWatch Logs accepts only 1, 3, 5" \
        in error_for(context)


def test_cors_credentials_with_wildcard_origin_is_refused(context):
    context["environments"]["dev"]["api"]["cors"] = {"allow_origins": ["*"], "allow_credentials": True}

    assert "environments.dev.api.cors: allow_credentials=true with allow_origins ['*']" in error_for(context)


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

    message = error_for(context)

    assert "environments.dev.api.type" in message and "environments.prod.removal_policy" in message


def test_unknown_environment_selection_lists_the_known_ones(context):
    with pytest.raises(ConfigError, match=r"-c env=qa: no such environment. Fix: use one of dev, prod, staging"):
        select_environments(load_settings(context), "qa")


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


@pytest.mark.parametrize(("value", "bundled"), [("true", False), ("false", True)])
def test_skip_bundling_setting(value, bundled):
    stack = build_stacks(make_app({"skip_bundling": value, "env": "dev", "strict_bundling": "false"}))["dev"]

    assert stack.bundling_required is bundled
