"""make cost: the arithmetic against hand-computed bills, the profile's checks, README's block kept current."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from cdk_app import cost, markdown
from cdk_app.assembly import Function, StackTemplate, load_templates
from cdk_app.cost import Estimate, Profile, plan

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def profile() -> Profile:
    return Profile.load()


def function(**changes) -> Function:
    base = Function(logical_id="ApiFunctionABCDEF12", memory_mb=1024, architecture="arm64", runtime="python3.13",
                    timeout_s=10, tracing=False, in_vpc=False, ephemeral_mb=512, snap_start=False, provisioned=0,
                    provisioned_max=0, target_utilization=None, warmup_rate_minutes=None, warmup_concurrency=0)
    return replace(base, **changes)


def usd(lines, contains: str) -> float:
    return sum(line.usd for line in lines if contains in line.item)


# --- Lambda and the cold-start strategies, by hand ---------------------------------------------------

def test_on_demand_arm64_requests_duration_and_init(profile):
    # 1M requests × 100 ms × 1 GB = 100,000 GB-s; one environment living the whole month starts once.
    traffic = replace(profile, init_ms=1000, environment_lifetime_hours=730)

    result = plan(function(), traffic, invocations=1_000_000, duration_ms=100, peak=1)

    assert usd(result.lines, "requests") == pytest.approx(0.20)
    assert usd(result.lines, "duration") == pytest.approx(100_000 * 0.0000133334)  # $1.33
    assert usd(result.lines, "init") == pytest.approx(1 * 0.0000133334)
    assert result.usd == pytest.approx(0.20 + 1.33334 + 0.0000133334)
    assert (result.strategy, result.user_cold_starts, result.cold_start_ms) == ("none", 1, 1000)


def test_x86_64_costs_a_quarter_more_per_gb_second(profile):
    arm = plan(function(), profile, 1_000_000, 100, peak=1)
    x86 = plan(function(architecture="x86_64"), profile, 1_000_000, 100, peak=1)

    assert usd(x86.lines, "duration") == pytest.approx(100_000 * 0.0000166667)  # $1.67
    assert usd(x86.lines, "duration") / usd(arm.lines, "duration") == pytest.approx(1.25, rel=1e-4)


def test_provisioned_concurrency_bills_the_reservation_and_cheaper_duration(profile):
    # 2 × 2 GB reserved for 730 h = 10,512,000 GB-s at $0.0000041667; mean concurrency 0.038 < 2, so every
    # request runs on provisioned instances, at $0.0000097222 per GB-s; no spillover at a peak of 2.
    provisioned = function(architecture="x86_64", memory_mb=2048, provisioned=2, provisioned_max=2)

    result = plan(provisioned, profile, invocations=1_000_000, duration_ms=100, peak=2)

    assert usd(result.lines, "provisioned concurrency 2") == pytest.approx(10_512_000 * 0.0000041667)  # $43.80
    assert usd(result.lines, "duration on provisioned") == pytest.approx(200_000 * 0.0000097222)  # $1.94
    assert usd(result.lines, "duration (GB-s)") == 0
    assert result.usd == pytest.approx(0.20 + 43.8003504 + 1.94444)
    assert result.user_cold_starts == 0


def test_provisioned_concurrency_scales_to_its_target_and_spills_above_its_maximum(profile):
    # 100M × 60 ms over 2,628,000 s = 2.28 busy instances; at 70% utilization 3.26 provisioned (between 2 and 5).
    scaling = function(provisioned=2, provisioned_max=5, target_utilization=0.7)
    traffic = replace(profile, environment_lifetime_hours=73)  # 10 starts a month per environment

    result = plan(scaling, traffic, invocations=100_000_000, duration_ms=60, peak=10)

    mean = 100_000_000 / 2_628_000 * 0.060
    assert usd(result.lines, "provisioned concurrency") == pytest.approx(mean / 0.7 * 2_628_000 * 0.0000033334)
    assert result.user_cold_starts == pytest.approx(10 * 10 * 0.5)  # the 5 above the maximum start cold
    assert usd(result.lines, "spillover") == pytest.approx(50 * traffic.init_ms / 1000 * 0.0000133334)


def test_snapstart_caches_one_version_and_pays_per_restore(profile):
    # Cache: 1 GB × 2,628,000 s × $0.0000015046 = $3.95; 3 environments × 730/73 = 30 restores of 1 GB.
    traffic = replace(profile, environment_lifetime_hours=73, restore_ms=200)

    result = plan(function(snap_start=True), traffic, invocations=1_000_000, duration_ms=100, peak=3)

    assert usd(result.lines, "SnapStart cache") == pytest.approx(2_628_000 * 0.0000015046)
    assert usd(result.lines, "SnapStart restores") == pytest.approx(30 * 0.0001397998)
    assert usd(result.lines, "init") == 0
    assert (result.user_cold_starts, result.cold_start_ms) == (30, 200)


def test_warmup_pays_its_pings_and_covers_only_its_own_instances(profile):
    # Every 5 minutes × 2 instances = 17,520 pings of 100 ms at 1 GB.
    warmed = function(warmup_rate_minutes=5, warmup_concurrency=2)
    traffic = replace(profile, warmup_ms=100, environment_lifetime_hours=73)

    result = plan(warmed, traffic, invocations=0, duration_ms=60, peak=4)

    assert usd(result.lines, "warmup invocations") == pytest.approx(17_520 * 0.0000002)
    assert usd(result.lines, "warmup duration") == pytest.approx(1_752 * 0.0000133334)
    assert result.user_cold_starts == pytest.approx(4 * 10 * 0.5)  # 2 of the peak's 4 start cold on users


def test_another_strategy_takes_its_settings_from_the_profile(profile):
    deployed = function(snap_start=True)

    result = plan(deployed, profile, invocations=1_000_000, duration_ms=60, peak=10, strategy="provisioned")

    minimum = profile.alternatives["provisioned"]["min"]
    assert usd(result.lines, f"provisioned concurrency {minimum:g}") == pytest.approx(
        minimum * 2_628_000 * 0.0000033334)
    assert usd(result.lines, "SnapStart") == 0
    with pytest.raises(ValueError, match="unknown cold-start strategy 'lambda-magic'"):
        plan(deployed, profile, 1, 1, 1, strategy="lambda-magic")


# --- the other services, from small templates ----------------------------------------------------------

def estimate(resources: dict, profile: Profile, **changes) -> Estimate:
    return Estimate(StackTemplate("t", {"Resources": resources}), replace(profile, **changes))


def test_http_api_meters_each_512_kb_and_rest_costs_three_and_a_half_times(profile):
    http = estimate({"Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"ProtocolType": "HTTP"}}}, profile,
                    requests_per_month=1_000_000, payload_kb=600)
    rest = estimate({"Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {}}}, profile,
                    requests_per_month=1_000_000, payload_kb=600)

    assert usd(http.lines, "HTTP API") == pytest.approx(2.00)  # 600 KB = 2 × 512 KB increments
    assert usd(rest.lines, "REST API") == pytest.approx(3.50)
    assert usd(http.lines, "responses out") == pytest.approx(600 / 1024 / 1024 * 1_000_000 * 0.09)


def test_elasticache_serverless_minimum_and_valkey_nodes(profile):
    serverless = estimate({"Cache": {"Type": "AWS::ElastiCache::ServerlessCache",
                                     "Properties": {"Engine": "valkey"}}}, profile,
                          cache_data_gb=0.05, requests_per_month=1_000_000, cache_commands_per_request=2,
                          payload_kb=3)
    nodes = estimate({"Cache": {"Type": "AWS::ElastiCache::ReplicationGroup", "Properties": {
        "Engine": "valkey", "CacheNodeType": "cache.t4g.medium", "NumCacheClusters": 2}}}, profile)

    assert usd(serverless.lines, "data stored") == pytest.approx(0.1 * 730 * 0.0837)  # the 100 MB minimum
    assert usd(serverless.lines, "ECPUs") == pytest.approx(2_000_000 * 3 * 0.0023 / 1e6)
    assert usd(nodes.lines, "2 × cache.t4g.medium") == pytest.approx(2 * 730 * 0.065 * 0.8)  # 20% off: $75.92


def test_an_unpriced_node_type_is_named_with_the_fix(profile):
    with pytest.raises(ValueError, match=r"cache.x99.huge.*PRICES\['cache.node.cache.x99.huge'\]"):
        estimate({"Cache": {"Type": "AWS::ElastiCache::ReplicationGroup",
                            "Properties": {"CacheNodeType": "cache.x99.huge", "NumCacheClusters": 1}}}, profile)


def test_interface_endpoints_bill_each_az_and_nat_gateways_each_hour(profile):
    endpoint = {"Type": "AWS::EC2::VPCEndpoint", "Properties": {"VpcEndpointType": "Interface",
                                                                "SubnetIds": ["a", "b"]}}
    result = estimate({"Sqs": endpoint, "Ssm": endpoint, "Xray": endpoint,
                       "S3": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {"VpcEndpointType": "Gateway"}},
                       "Nat": {"Type": "AWS::EC2::NatGateway", "Properties": {}}}, profile,
                      endpoint_gb_per_month=0, nat_gb_per_month=10)

    assert usd(result.lines, "interface endpoints") == pytest.approx(6 * 730 * 0.01)  # $43.80
    assert usd(result.lines, "NAT gateways") == pytest.approx(730 * 0.045)
    assert usd(result.lines, "NAT data") == pytest.approx(10 * 0.045)


def test_xray_records_the_reservoir_then_the_sampled_share(profile):
    traced = {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {"TracingConfig": {"Mode": "Active"}}},
              "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {}},
              "Integration": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
                  "ApiId": {"Ref": "Api"}, "IntegrationUri": {"Fn::GetAtt": ["Fn", "Arn"]}}}}

    result = estimate(traced, profile, requests_per_month=5_000_000)

    assert usd(result.lines, "traces") == pytest.approx((2_628_000 + 0.05 * 2_372_000) * 5 / 1e6)  # $13.73


def test_cognito_bills_the_pools_feature_plan_and_machine_clients(profile):
    result = estimate({"Pool": {"Type": "AWS::Cognito::UserPool", "Properties": {"UserPoolTier": "PLUS"}},
                       "Machine": {"Type": "AWS::Cognito::UserPoolClient", "Properties": {
                           "UserPoolId": {"Ref": "Pool"}, "AllowedOAuthFlows": ["client_credentials"]}}},
                      profile, monthly_active_users=1000, m2m_token_requests_per_month=1000)

    assert usd(result.lines, "monthly active users (plus)") == pytest.approx(20.00)
    assert usd(result.lines, "machine app clients") == pytest.approx(6.00)
    assert usd(result.lines, "machine token requests") == pytest.approx(2.25)


def test_alarms_bill_each_metric_and_custom_metrics_once(profile):
    math_alarm = {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Metrics": [
        {"Id": "a", "MetricStat": {"Metric": {"Namespace": "AWS/ApiGateway", "MetricName": "5XXError"}}},
        {"Id": "b", "MetricStat": {"Metric": {"Namespace": "AWS/ApiGateway", "MetricName": "Count"}}},
        {"Id": "c", "Expression": "a / b"}]}}
    custom = {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Namespace": "App", "MetricName": "CacheErrors"}}

    result = estimate({"Math": math_alarm, "Custom": custom, "Board": {"Type": "AWS::CloudWatch::Dashboard"}},
                      profile, requests_per_month=0)

    assert usd(result.lines, "alarm metrics") == pytest.approx(3 * 0.10)
    assert usd(result.lines, "custom metrics") == pytest.approx(0.30)
    assert usd(result.lines, "dashboards") == pytest.approx(3.00)


# --- the profile --------------------------------------------------------------------------------------

def test_overrides_change_the_profile_and_mistakes_are_named(tmp_path):
    assert Profile.load(overrides={"requests_per_month": "2e7"}).requests_per_month == 20_000_000
    with pytest.raises(ValueError, match=r"--set request_per_month=…: no such profile key"):
        Profile.load(overrides={"request_per_month": "1"})
    broken = tmp_path / "profile.json"
    document = json.loads(cost.DEFAULT_PROFILE.read_text())
    broken.write_text(json.dumps({**document, "peak_concurrency": -3}))
    with pytest.raises(ValueError, match=r"peak_concurrency=-3: must be a number ≥ 0"):
        Profile.load(broken)
    broken.write_text(json.dumps({**document, "requests": 1}))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['requests'\]"):
        Profile.load(broken)
    with pytest.raises(ValueError, match="expected key=value"):
        cost.parse_overrides(["requests_per_month"])


def test_every_price_says_where_and_when_it_was_taken():
    for key, entry in cost.PRICES.items():
        assert entry.usd > 0, key
        assert entry.source.startswith("https://aws.amazon.com/"), key
        assert len(entry.as_of) == 10 and entry.as_of[4] == "-", key


# --- this repository's environments ---------------------------------------------------------------

@pytest.fixture(scope="module")
def templates(synth) -> dict:
    synth.app.synth()
    return load_templates(synth.outdir)


def test_readme_shows_the_current_cost_of_every_environment(templates, profile):
    generated = cost.blocks(templates, profile)

    assert markdown.marked(README.read_text(), generated) == ["cost"]
    assert markdown.stale(README.read_text(), generated) == [], "README.md's cost block is stale: run `make cost`"


def test_each_environment_is_priced_from_what_it_turns_on(templates, profile):
    bills = {name.rsplit("-", 1)[-1]: Estimate(StackTemplate(name, t), profile) for name, t in templates.items()}
    services = {env: {line.service for line in bill.lines} for env, bill in bills.items()}

    assert "ElastiCache" not in services["dev"] and "VPC" not in services["dev"]
    assert {"ElastiCache", "VPC"} <= services["staging"] and "WAF" not in services["staging"]
    assert {"ElastiCache", "VPC", "WAF"} <= services["prod"]
    assert usd(bills["prod"].lines, "provisioned concurrency") > 0
    assert usd(bills["staging"].lines, "SnapStart cache") > 0 and usd(bills["dev"].lines, "warmup") > 0
    assert usd(bills["prod"].lines, "REST API") > 0 and usd(bills["dev"].lines, "HTTP API") > 0
    assert bills["dev"].usd < bills["staging"].usd < bills["prod"].usd


def test_the_comparison_plot_is_a_png(templates, profile, tmp_path):
    stacks = {name: StackTemplate(name, t) for name, t in templates.items() if name.endswith("-prod")}

    path = cost.plot(stacks, profile, tmp_path / "cold-starts.png")

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
