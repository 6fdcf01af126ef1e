"""The architecture diagrams: drawn from synthesized templates, current in README.md, for any CDK app."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from aws_cdk import App, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs

from cdk_app import diagram, markdown
from cdk_app.assembly import load_templates

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="session")
def generated(synth) -> dict[str, str]:
    """The session's app synthesized to disk (once: App.synth caches), read back as make diagram reads cdk.out."""
    synth.app.synth()
    return diagram.blocks(load_templates(synth.outdir))


def test_readme_shows_the_current_diagram_of_every_environment(generated):
    text = README.read_text()

    assert markdown.marked(text, generated) == list(generated)
    assert markdown.stale(text, generated) == [], "README.md's diagrams are stale: run `make diagram`"


def test_each_environment_shows_what_it_turns_on(generated):
    dev, staging, prod = (generated[f"diagram:fastapi-lambda-{name}"] for name in ("dev", "staging", "prod"))

    assert "API Gateway HTTP API" in dev and "warmup every 5 min × 1" in dev and "subgraph vpc" not in dev
    assert 'ApiColdStartWarmupRule -->|warmup| ApiFunction' in dev
    assert "SnapStart" in staging and "ElastiCache Serverless<br/>valkey 8" in staging
    assert "API Gateway REST API · X-Ray" in prod and "provisioned concurrency 2–5" in prod
    assert "2 × cache.t4g.medium · multi-AZ" in prod and "GatewayFirewallWebAcl -->|filters| GatewayRestApi" in prod
    assert "Plus · MFA required · threat protection" in prod
    for block in (dev, staging, prod):
        assert "clients -->|HTTPS| Gateway" in block
        assert "TasksQueue -->|batches| TasksWorkerFunction" in block
        assert "ApiFunction -->|write| TasksQueue" in block
        assert "BucketNotificationsHandler" not in block and "CustomResourceProvider" not in block


def test_any_app_is_drawn_and_custom_resource_machinery_is_not(tmp_path):
    app = App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    stack = Stack(app, "Orders")
    code = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")
    api_function = lambda_.Function(stack, "OrdersApi", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                                    code=code, memory_size=512, architecture=lambda_.Architecture.X86_64)
    worker = lambda_.Function(stack, "Shipper", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                              code=code, timeout=Duration.seconds(30))
    queue = sqs.Queue(stack, "Shipments", visibility_timeout=Duration.seconds(180))
    queue.grant_send_messages(api_function)
    worker.add_event_source(sources.SqsEventSource(queue))
    apigw.HttpApi(stack, "Http", default_integration=integrations.HttpLambdaIntegration(
        "Orders", cast(lambda_.IFunction, api_function)))  # jsii: Function fails its IFunction protocol for pyright
    # auto_delete_objects adds a custom resource and its provider function: machinery, not the app.
    s3.Bucket(stack, "Archive", removal_policy=RemovalPolicy.DESTROY, auto_delete_objects=True)
    app.synth()

    (block,) = diagram.blocks(load_templates(tmp_path)).values()

    assert 'OrdersApi["λ OrdersApi<br/>python3.12 · x86_64 · 512 MB<br/>on demand"]' in block
    assert "Http -->|invokes| OrdersApi" in block  # the function itself: no alias here
    assert "Shipments -->|batches| Shipper" in block
    assert "OrdersApi -->|write| Shipments" in block
    assert "clients -->|HTTPS|" in block and "S3 Archive" in block
    assert "CustomS3AutoDeleteObjects" not in block


def test_update_rewrites_only_the_marked_blocks_and_stale_finds_old_ones():
    generated = {"diagram:app-dev": "```mermaid\nflowchart LR\n  a --> b\n```"}
    text = ("intro\n<!-- diagram:app-dev -->\nold\n<!-- /diagram:app-dev -->\nmiddle\n"
            "<!-- diagram:other -->\nkept\n<!-- /diagram:other -->\n")

    updated = markdown.update(text, generated)

    assert markdown.stale(text, generated) == ["diagram:app-dev"]
    assert markdown.stale(updated, generated) == []
    assert updated == ("intro\n<!-- diagram:app-dev -->\n```mermaid\nflowchart LR\n  a --> b\n```\n"
                       "<!-- /diagram:app-dev -->\nmiddle\n<!-- diagram:other -->\nkept\n<!-- /diagram:other -->\n")
    assert markdown.update(updated, generated) == updated


def test_check_mode_fails_on_a_stale_file_and_names_the_fix(generated, synth, tmp_path, capsys):
    tag = next(iter(generated))
    readme = tmp_path / "README.md"
    readme.write_text(f"<!-- {tag} -->\nflowchart LR\n<!-- /{tag} -->\n")

    assert diagram.main([str(synth.outdir), "--check", str(readme)]) == 1
    assert f"stale {tag}; run `make diagram`" in capsys.readouterr().err
    assert diagram.main([str(synth.outdir), "--update", str(readme)]) == 0
    assert diagram.main([str(synth.outdir), "--check", str(readme)]) == 0
