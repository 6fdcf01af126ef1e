"""Reading a cloud assembly and resolving a template's references to local values."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from cdk_app.local.events import failed_items, sqs_record
from cdk_app.local.template import LocalError, Physical, Resolver, StackTemplate, local_name, read_stack

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:fastapi-lambda/dev/partner_api_key-AbCdEf"


def stack(resources: dict, **template) -> StackTemplate:
    return StackTemplate(name="app-dev", folder=Path("."), template={"Resources": resources, **template})


def test_intrinsics_resolve_against_local_values():
    resolver = Resolver(stack({"Secret": {"Type": "AWS::SecretsManager::Secret"},
                               "Queue": {"Type": "AWS::SQS::Queue"}},
                              Conditions={"IsDev": {"Fn::Equals": [{"Ref": "AWS::StackName"}, "app-dev"]}}))
    resolver.physical["Secret"] = Physical(SECRET_ARN)
    resolver.physical["Queue"] = Physical("http://moto/123456789012/q", {"Arn": "arn:aws:sqs:us-east-1:1:q"})
    # CDK's way to a secret's name from its ARN (the generated suffix dropped)
    name = {"Fn::Join": ["-", [{"Fn::Select": [i, {"Fn::Split": ["-", {"Fn::Select": [6, {"Fn::Split": [
        ":", {"Ref": "Secret"}]}]}]}]} for i in (0, 1)]]}
    assert resolver.resolve(name) == "fastapi-lambda/dev/partner_api_key"
    assert resolver.resolve({"Fn::Sub": ["${Queue.Arn}|${AWS::Region}|${!Literal}|${X}", {"X": "x"}]}) == \
        "arn:aws:sqs:us-east-1:1:q|us-east-1|${Literal}|x"
    assert resolver.resolve({"Fn::If": ["IsDev", {"Ref": "Queue"}, "no"]}) == "http://moto/123456789012/q"
    assert resolver.resolve({"a": {"Ref": "AWS::NoValue"}, "b": [1, {"Ref": "AWS::NoValue"}]}) == {"b": [1]}


def test_resources_not_made_locally_resolve_to_placeholders_of_the_right_shape():
    resolver = Resolver(stack({"Topic": {"Type": "AWS::SNS::Topic"}, "Secret": {"Type": "AWS::SecretsManager::Secret"},
                               "Role": {"Type": "AWS::IAM::Role"}}))
    assert resolver.ref("Topic") == "arn:aws:sns:us-east-1:123456789012:app-dev-Topic"
    assert resolver.ref("Secret").split(":")[5:] == ["secret", "app-dev-Secret"]
    assert resolver.get_att("Role", "Arn") == "arn:aws:iam:us-east-1:123456789012:app-dev-Role"
    assert resolver.placeholders == {"Topic", "Secret", "Role"}
    with pytest.raises(LocalError, match="not in app-dev"):
        resolver.ref("Missing")


def test_names_are_cut_to_the_services_limits_with_a_hash():
    long = local_name("a-very-long-stack-name", "SomeConstructWithALongLogicalId0123456789ABCDEF", limit=40)
    assert len(long) == 40 and long != local_name("a-very-long-stack-name", "SomeOther", limit=40)
    assert local_name("App-Dev", "Files_Bucket", lower=True) == "app-dev-files-bucket"


def write_assembly(folder: Path, artifacts: dict, templates: dict[str, dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    for name, template in templates.items():
        (folder / name).write_text(json.dumps(template))


def test_stacks_are_found_also_in_nested_assemblies_and_assets_by_metadata_or_key(tmp_path):
    function = {"Type": "AWS::Lambda::Function", "Metadata": {"aws:asset:path": "asset.abc"},
                "Properties": {"Code": {"S3Key": "abc.zip"}}}
    zipped = {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Key": "def.zip"}}}
    write_assembly(tmp_path, {"Stage": {"type": "cdk:cloud-assembly", "properties": {"directoryName": "stage"}},
                              "one": {"type": "aws:cloudformation:stack", "environment": "aws://111122223333/eu-west-1",
                                      "properties": {"templateFile": "one.json"}}},
                   {"one.json": {"Resources": {"F": function, "Z": zipped}}})
    write_assembly(tmp_path / "stage", {"two": {"type": "aws:cloudformation:stack", "properties": {
        "templateFile": "two.json", "stackName": "Stage-two"}}}, {"two.json": {"Resources": {}}})
    (tmp_path / "asset.abc").mkdir()
    with zipfile.ZipFile(tmp_path / "asset.def.zip", "w") as archive:
        archive.writestr("h.py", "def handler(e, c): return e\n")

    with pytest.raises(LocalError, match="holds 2 stacks; name one: Stage-two, one"):
        read_stack(tmp_path)
    one = read_stack(tmp_path, "one")
    assert (one.region, one.account) == ("eu-west-1", "111122223333")
    assert read_stack(tmp_path, "Stage-two").folder == (tmp_path / "stage").resolve()
    assert one.asset("F", tmp_path / "work") == (tmp_path / "asset.abc").resolve()
    extracted = one.asset("Z", tmp_path / "work")
    assert (extracted / "h.py").is_file()
    with pytest.raises(LocalError, match="not a cloud assembly"):
        read_stack(tmp_path / "nowhere")


# --- event source helpers -----------------------------------------------------------------------------

@pytest.mark.parametrize(("response", "expected"), [
    (None, set()), ({}, set()), ({"batchItemFailures": []}, set()), ({"handled": "x"}, set()),
    ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, {"m2"}),
    ({"batchItemFailures": [{"itemIdentifier": "nope"}]}, None),  # not in the batch: all failed
    ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
    ({"batchItemFailures": [{"id": "m1"}]}, None),
    ({"batchItemFailures": "m1"}, None),
])
def test_partial_batch_responses_are_read_as_lambda_reads_them(response, expected):
    assert failed_items(response, {"m1", "m2"}) == expected


def test_sqs_records_have_lambdas_shape():
    record = sqs_record({"MessageId": "m1", "ReceiptHandle": "r", "Body": "b", "MD5OfBody": "x",
                         "Attributes": {"ApproximateReceiveCount": "2"},
                         "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "t"},
                                               "blob": {"DataType": "Binary", "BinaryValue": b"\x00"}}},
                        "arn:aws:sqs:us-east-1:1:q", "us-east-1")
    assert record["eventSource"] == "aws:sqs" and record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["messageAttributes"]["kind"] == {"stringValue": "t", "stringListValues": [], "binaryListValues": [],
                                                   "dataType": "String"}
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AA=="
