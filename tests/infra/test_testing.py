"""cdk_app.testing, as a consumer uses it: any app, any asset, snapshots that move only with the infrastructure."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App, BundlingOptions, DockerImage, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from syrupy.extensions.json import JSONSnapshotExtension

from cdk_app.testing import BUNDLING_STACKS, app_for_tests, normalize, normalized_template, skip_bundling


def consumer_stack(app: App, source: Path, memory: int = 512) -> Stack:
    """A consumer's own function with Docker bundling: there is no Docker engine here, so it bundles only if asked."""
    stack = Stack(app, "consumer")
    lambda_.Function(stack, "Handler", runtime=lambda_.Runtime.PYTHON_3_13, handler="index.handler",
                     memory_size=memory,
                     code=lambda_.Code.from_asset(str(source), bundling=BundlingOptions(
                         image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.13"),
                         command=["bash", "-c", "cp -r . /asset-output"])))
    versioned = lambda_.Function(stack, "Versioned", runtime=lambda_.Runtime.PYTHON_3_13, handler="index.handler",
                                 code=lambda_.Code.from_asset(str(source)))
    versioned.add_alias("live")
    return stack


def source_with(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "index.py").write_text(text)
    return folder


def test_any_app_synthesizes_without_docker(tmp_path):
    source = source_with(tmp_path, "src", "def handler(event, context): return 1\n")

    Template.from_stack(consumer_stack(app_for_tests(), source)).resource_count_is("AWS::Lambda::Function", 2)
    Template.from_stack(consumer_stack(skip_bundling(App()), source)).resource_count_is("AWS::Lambda::Function", 2)


def test_skip_bundling_refuses_an_app_that_has_stacks(tmp_path):
    app = App(context={BUNDLING_STACKS: []})
    Stack(app, "first")
    with pytest.raises(ValueError, match=r"skip_bundling\(app\) must be called before any stack"):
        skip_bundling(app)


def test_a_code_change_leaves_the_snapshot_alone_and_an_infrastructure_change_does_not(tmp_path):
    one = source_with(tmp_path, "one", "def handler(event, context): return 1\n")
    two = source_with(tmp_path, "two", "def handler(event, context): return 2\n")
    raw_one = Template.from_stack(consumer_stack(app_for_tests(), one)).to_json()
    raw_two = Template.from_stack(consumer_stack(app_for_tests(), two)).to_json()

    assert raw_one != raw_two  # the asset hashes and the version's logical id differ...
    assert normalized_template(consumer_stack(app_for_tests(), one)) == normalize(raw_two)  # ...and nothing else
    assert normalized_template(consumer_stack(app_for_tests(), one, memory=1024)) != normalize(raw_one)


def test_masks_only_hashes():
    raw = {"S3Key": "a" * 64 + ".zip", "Ref": "ApiFunctionCurrentVersion478B78C87d7fb714f673092e9ee02541e5a09394",
           "Name": "live", "Short": "b" * 63}
    assert normalize(raw) == {"S3Key": "<asset-hash>.zip", "Ref": "ApiFunctionCurrentVersion<hash>", "Name": "live",
                              "Short": "b" * 63}


def test_with_syrupy(tmp_path, snapshot):
    source = source_with(tmp_path, "src", "def handler(event, context): return 1\n")
    template = normalized_template(Template.from_stack(consumer_stack(app_for_tests(), source)))
    # The snapshot holds masks, never a hash: it stays valid when the code changes.
    assert "<asset-hash>" in str(template)
    assert template == snapshot(extension_class=JSONSnapshotExtension)
