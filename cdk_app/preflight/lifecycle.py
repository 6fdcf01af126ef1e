"""Whether ``cdk destroy`` can delete what the template says it deletes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cdk_app.preflight.engine import Resource, Template, Violation, referenced_ids, rule

#: Resources with a deletion protection of their own: (type, how to read it).
_PROTECTED: dict[str, Callable[[Resource], bool]] = {
    "AWS::Cognito::UserPool": lambda r: r.get("DeletionProtection") == "ACTIVE",
    "AWS::DynamoDB::Table": lambda r: r.get("DeletionProtectionEnabled") is True,
    "AWS::DynamoDB::GlobalTable": lambda r: any(x.get("DeletionProtectionEnabled") is True
                                                for x in r.mappings("Replicas")),
    "AWS::Logs::LogGroup": lambda r: r.get("DeletionProtectionEnabled") is True,
}


def _deleted(resource: Resource) -> bool:
    """Whether deleting the stack deletes the resource (CloudFormation's default DeletionPolicy is Delete)."""
    return resource.deletion_policy in (None, "Delete")


@rule("DESTROY-DELETION-PROTECTION", *_PROTECTED,
      message="DELETE_FAILED: the resource refuses deletion while its own deletion protection is on, so cdk destroy "
              "stops half way",
      source="https://docs.aws.amazon.com/cognito/latest/developerguide/user-pool-settings-deletion-protection.html; "
             "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithTables.Basics.html"
             "#WorkingWithTables.Basics.DeletionProtection")
def protected_but_deleted(resource: Resource, template: Template) -> Iterator[Violation]:
    """A resource the stack deletes has no deletion protection of its own (retain it instead)."""
    if _deleted(resource) and _PROTECTED[resource.type](resource):
        yield Violation(f"deletion protection on, DeletionPolicy {resource.deletion_policy or 'Delete (default)'}",
                        "retain it (removal_policy RETAIN) where it is protected, or turn the protection off where the "
                        "stack may delete it")


@rule("DESTROY-BUCKET-NOT-EMPTY", "AWS::S3::Bucket", severity="warning",
      message='DELETE_FAILED: "The bucket you tried to delete is not empty" once it holds objects (or object versions)',
      source="https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html")
def bucket_emptied(resource: Resource, template: Template) -> Iterator[Violation]:
    """A bucket the stack deletes is emptied first (CDK's auto_delete_objects)."""
    if not _deleted(resource):
        return
    emptied = any(resource.id in referenced_ids(r.get("BucketName"))
                  for r in template.of_type("Custom::S3AutoDeleteObjects"))
    if not emptied:
        yield Violation("DeletionPolicy Delete without auto-delete of its objects", "set auto_delete_objects=True "
                        "where the bucket is destroyed with the stack, or retain it")
