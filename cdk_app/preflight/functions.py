"""Lambda: functions, aliases, versions, provisioned concurrency, SnapStart, event source mappings, async invoke."""

from __future__ import annotations

import re
from collections.abc import Iterator

from cdk_app.preflight.engine import (
    Resource,
    Template,
    Violation,
    as_list,
    known,
    literal_text,
    number,
    referenced_ids,
    rule,
    shape,
    shown,
)

FUNCTION, ALIAS, VERSION = "AWS::Lambda::Function", "AWS::Lambda::Alias", "AWS::Lambda::Version"
ESM, INVOKE_CONFIG = "AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig"
QUEUE = "AWS::SQS::Queue"
#: Lambda's defaults when a template leaves the property out.
DEFAULT_TIMEOUT, DEFAULT_VISIBILITY_TIMEOUT = 3, 30

#: Variables the Lambda runtime sets itself (AWS: "reserved keys that are currently not supported for modification").
RESERVED_VARIABLES = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
})
_ENVIRONMENT_DOCS = "https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html"
_SNAPSTART_DOCS = "https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html"
#: Each runtime family's first version with SnapStart.
_SNAPSTART_RUNTIMES = {"java": (11,), "python": (3, 12), "dotnet": (8,)}


def function_of(value: object, template: Template) -> Resource | None:
    """The function a FunctionName (a name, ARN, alias or version reference) belongs to, if it is in the template."""
    for logical_id in referenced_ids(value):
        found = template.resources.get(logical_id)
        if found is None:
            continue
        if found.type == FUNCTION:
            return found
        if found.type in (ALIAS, VERSION):
            return function_of(found.get("FunctionName"), template)
    return None


def aliases_of(function: Resource, template: Template) -> list[Resource]:
    return [a for a in template.of_type(ALIAS) if function_of(a.get("FunctionName"), template) is function]


def provisioned(function: Resource, template: Template) -> list[tuple[Resource, int]]:
    """(alias or version, provisioned concurrency) of every alias and version of ``function`` that has some."""
    found: list[tuple[Resource, int]] = []
    for other in template.of_type(ALIAS, VERSION):
        count = number(other.get("ProvisionedConcurrencyConfig", "ProvisionedConcurrentExecutions"))
        if count and function_of(other.get("FunctionName"), template) is function:
            found.append((other, int(count)))
    return found


def _snapstart(function: Resource) -> bool:
    return function.get("SnapStart", "ApplyOn") == "PublishedVersions"


@rule("LAMBDA-RESERVED-VARIABLE", FUNCTION,
      message='"Lambda was unable to configure your environment variables because the environment variables you have '
              'provided contains reserved keys that are currently not supported for modification"',
      source=f"{_ENVIRONMENT_DOCS}#configuration-envvars-runtime; https://github.com/aws/aws-cdk/pull/28048")
def reserved_variables(resource: Resource, template: Template) -> Iterator[Violation]:
    """No environment variable the Lambda runtime sets itself (AWS_REGION, _HANDLER, ...)."""
    variables = resource.mapping("Environment", "Variables")
    if reserved := sorted(set(variables) & RESERVED_VARIABLES):
        yield Violation(f"Environment sets {', '.join(reserved)}", "remove them: Lambda sets them itself (read "
                        "AWS_REGION from the environment at run time)", location="Properties/Environment/Variables")


@rule("LAMBDA-VARIABLE-NAMES", FUNCTION,
      message="ValidationException: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: "
              "[a-zA-Z]([a-zA-Z0-9_])+]",
      source=f"{_ENVIRONMENT_DOCS}; https://github.com/pulumi/pulumi-aws/issues/2159")
def variable_names(resource: Resource, template: Template) -> Iterator[Violation]:
    """Environment variable names start with a letter and have two or more letters, digits or underscores."""
    variables = resource.mapping("Environment", "Variables")
    if bad := [k for k in variables if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_]+", k)]:
        yield Violation(f"Environment names {', '.join(map(repr, bad))}", "rename them: a letter, then letters, "
                        "digits or underscores (two characters at least)", location="Properties/Environment/Variables")


@rule("LAMBDA-ENVIRONMENT-SIZE", FUNCTION,
      message='"Lambda was unable to configure your environment variables because the environment variables you have '
              'provided exceeded the 4KB limit"', source=f"{_ENVIRONMENT_DOCS}#configuration-envvars-config")
def environment_size(resource: Resource, template: Template) -> Iterator[Violation]:
    """All environment variables together fit in 4 KB (counting only what is known at synth)."""
    variables = resource.mapping("Environment", "Variables")
    size = sum(len(k.encode()) + len((shape(v) or "").replace("\N{REPLACEMENT CHARACTER}", "").encode())
               for k, v in variables.items())
    if size > 4096:
        yield Violation(f"Environment holds at least {size} bytes", "move large values to SSM parameters or Secrets "
                        "Manager and pass their names", location="Properties/Environment/Variables")


@rule("LAMBDA-LOG-LEVELS-NEED-JSON", FUNCTION,
      message="InvalidParameterValueException: application and system log levels need the JSON log format",
      source="https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html")
def log_levels(resource: Resource, template: Template) -> Iterator[Violation]:
    """Log-level filtering (ApplicationLogLevel, SystemLogLevel) only with LogFormat JSON."""
    logging = resource.mapping("LoggingConfig")
    levels = [k for k in ("ApplicationLogLevel", "SystemLogLevel") if logging.get(k)]
    if levels and logging.get("LogFormat", "Text") == "Text":
        yield Violation(f"LoggingConfig sets {', '.join(levels)} with LogFormat Text", "set LogFormat to JSON or "
                        "remove the levels", location="Properties/LoggingConfig")


@rule("LAMBDA-LAYERS", FUNCTION, message='"Cannot reference more than 5 layers"',
      source="https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html")
def layer_count(resource: Resource, template: Template) -> Iterator[Violation]:
    """At most five layers per function."""
    if len(layers := as_list(resource.get("Layers"))) > 5:
        yield Violation(f"{len(layers)} layers", "merge layers (one dependency layer plus extensions) to at most 5")


@rule("LAMBDA-SNAPSTART-RUNTIME", FUNCTION,
      message="InvalidParameterValueException: SnapStart supports Java 11+, Python 3.12+ and .NET 8+ managed runtimes",
      source=f"{_SNAPSTART_DOCS}#snapstart-runtimes")
def snapstart_runtime(resource: Resource, template: Template) -> Iterator[Violation]:
    """SnapStart only on a runtime that supports it."""
    runtime = resource.get("Runtime")
    if not _snapstart(resource) or not isinstance(runtime, str):
        return
    match = re.fullmatch(r"([a-z]+)(\d+(?:\.\d+)?)", runtime)
    family, version = (match.group(1), tuple(map(int, match.group(2).split(".")))) if match else (runtime, ())
    first = _SNAPSTART_RUNTIMES.get(family)
    if first is None or version < first:
        yield Violation(f"SnapStart on {runtime}", "use python3.12 or later (java11+, dotnet8+), or another cold-start "
                        "strategy", location="Properties/SnapStart")


@rule("LAMBDA-SNAPSTART-STORAGE", FUNCTION,
      message="InvalidParameterValueException: SnapStart does not support Amazon EFS or ephemeral storage above 512 MB",
      source=f"{_SNAPSTART_DOCS}#snapstart-limitations")
def snapstart_storage(resource: Resource, template: Template) -> Iterator[Violation]:
    """SnapStart without EFS and with the default 512 MB of ephemeral storage."""
    storage = number(resource.get("EphemeralStorage", "Size"))
    if _snapstart(resource) and (resource.get("FileSystemConfigs") or (storage and storage > 512)):
        yield Violation("SnapStart with EFS or more than 512 MB of /tmp", "drop the file system or the extra storage, "
                        "or choose another cold-start strategy")


@rule("LAMBDA-SNAPSTART-PROVISIONED", FUNCTION,
      message="InvalidParameterValueException: SnapStart does not support provisioned concurrency",
      source=f"{_SNAPSTART_DOCS}#snapstart-limitations; https://github.com/aws/aws-cdk/pull/26761")
def snapstart_provisioned(resource: Resource, template: Template) -> Iterator[Violation]:
    """SnapStart and provisioned concurrency are not combined on one function."""
    if _snapstart(resource) and (found := provisioned(resource, template)):
        yield Violation(f"SnapStart with provisioned concurrency on {found[0][0].id}", "choose one: SnapStart or "
                        "provisioned concurrency (cold_start.strategy)")


@rule("LAMBDA-PROVISIONED-LATEST", ALIAS,
      message='"Provisioned Concurrency Configs cannot be applied to unpublished function versions"',
      source="https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html")
def provisioned_latest(resource: Resource, template: Template) -> Iterator[Violation]:
    """Provisioned concurrency only on an alias that points at a published version."""
    if resource.get("ProvisionedConcurrencyConfig") and resource.get("FunctionVersion") == "$LATEST":
        yield Violation("ProvisionedConcurrencyConfig on an alias of $LATEST", "point the alias at a published "
                        "version (function.current_version)")


@rule("LAMBDA-PROVISIONED-RESERVED", FUNCTION,
      message="InvalidParameterValueException: Requested Provisioned Concurrency should not be greater than the "
              "reservedConcurrentExecution for function",
      source="https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html")
def provisioned_within_reserved(resource: Resource, template: Template) -> Iterator[Violation]:
    """Provisioned concurrency of a function's aliases and versions fits its reserved concurrency."""
    reserved = number(resource.get("ReservedConcurrentExecutions"))
    total = sum(count for _, count in provisioned(resource, template))
    if reserved is not None and total > reserved:
        yield Violation(f"provisioned concurrency {total} above ReservedConcurrentExecutions {reserved:g}",
                        "raise the reservation or lower the provisioned concurrency")


def _scaling_max(function: Resource, template: Template) -> int:
    """The highest provisioned concurrency autoscaling may set on the function's aliases."""
    aliases = {a.id for a in aliases_of(function, template)}
    return max((int(number(t.get("MaxCapacity")) or 0) for t in template.of_type(
        "AWS::ApplicationAutoScaling::ScalableTarget") if referenced_ids(t.get("ResourceId")) & aliases), default=0)


@rule("LAMBDA-CONCURRENCY-QUOTA", FUNCTION, severity="warning",
      message="\"Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
              "below its minimum value\" (the same for provisioned concurrency): the account's 'Concurrent executions' "
              "quota must leave 100 unreserved; it is 1,000 by default and can be as low as 10 on new accounts",
      source="https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html; "
             "https://github.com/aws-samples/alarm-context-tool/issues/2")
def concurrency_quota(resource: Resource, template: Template) -> Iterator[Violation]:
    """Reserved or provisioned concurrency needs the account's concurrency quota to leave 100 unreserved."""
    reserved = int(number(resource.get("ReservedConcurrentExecutions")) or 0)
    pinned = max(sum(c for _, c in provisioned(resource, template)), _scaling_max(resource, template))
    if reserved or pinned:
        need = max(reserved, pinned) + 100
        yield Violation(f"reserves {reserved} and provisions up to {pinned} concurrent executions",
                        f"check that the account's Lambda 'Concurrent executions' quota is at least {need} in the "
                        "target region (Service Quotas), or request an increase before deploying")


def _queue_of(mapping: Resource, template: Template) -> Resource | None:
    return template.target(mapping.get("EventSourceArn"), QUEUE)


@rule("LAMBDA-SQS-VISIBILITY", ESM,
      message='"Queue visibility timeout: X seconds is less than Function timeout: Y seconds"',
      source="https://github.com/aws-cloudformation/cfn-lint/issues/3987; "
             "https://github.com/github-aws-runners/terraform-aws-github-runner/issues/465")
def sqs_visibility(resource: Resource, template: Template) -> Iterator[Violation]:
    """An SQS event source's queue stays invisible at least as long as the function may run."""
    queue, function = _queue_of(resource, template), function_of(resource.get("FunctionName"), template)
    if queue is None or function is None:
        return
    visibility = number(queue.get("VisibilityTimeout", default=DEFAULT_VISIBILITY_TIMEOUT))
    timeout = number(function.get("Timeout", default=DEFAULT_TIMEOUT))
    if visibility is not None and timeout is not None and visibility < timeout:
        yield Violation(f"queue {queue.id} VisibilityTimeout {visibility:g}s < function {function.id} Timeout "
                        f"{timeout:g}s", f"set the queue's visibility timeout to at least 6 x {timeout:g}s "
                        "(AWS's advice) or shorten the function's timeout",
                        message=f'"Queue visibility timeout: {visibility:g} seconds is less than Function timeout: '
                                f'{timeout:g} seconds"')


@rule("LAMBDA-SQS-BATCHING", ESM,
      message='"Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10" '
              "(FIFO queues: batches of at most 10, no batching window)",
      source="https://github.com/serverless/serverless/issues/8989; "
             "https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html")
def sqs_batching(resource: Resource, template: Template) -> Iterator[Violation]:
    """SQS batches above 10 need a batching window; FIFO queues take batches of at most 10 and no window."""
    queue = _queue_of(resource, template)
    arn = shape(resource.get("EventSourceArn")) or ""
    if queue is None and ":sqs:" not in arn:
        return
    size, window = number(resource.get("BatchSize")) or 10, number(resource.get("MaximumBatchingWindowInSeconds")) or 0
    fifo = (queue is not None and queue.get("FifoQueue") is True) or arn.endswith(".fifo")
    if fifo and (size > 10 or window):
        yield Violation(f"BatchSize {size:g}, window {window:g}s on a FIFO queue", "use batches of at most 10 and no "
                        "batching window", message="FIFO queues take batches of at most 10 without a batching window")
    elif size > 10 and window < 1:
        yield Violation(f"BatchSize {size:g} without MaximumBatchingWindowInSeconds", "set a batching window of 1 "
                        "second or more, or a batch size of 10 or less")
    elif size > 10000:
        yield Violation(f"BatchSize {size:g}", "use at most 10000", message="BatchSize is at most 10000 for SQS")


@rule("LAMBDA-SQS-DESTINATION", ESM, message="InvalidParameterValueException: Unsupported DestinationConfig parameter "
      "for given event source mapping type (SQS event sources take no on-failure destination)",
      source="https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventsourcemapping.html#invocation-eventsourcemapping-destinations")
def sqs_destination(resource: Resource, template: Template) -> Iterator[Violation]:
    """An SQS event source has no DestinationConfig: failed messages go to the queue's own dead-letter queue."""
    if resource.get("DestinationConfig") and (_queue_of(resource, template) or ":sqs:" in (
            shape(resource.get("EventSourceArn")) or "")):
        yield Violation("DestinationConfig on an SQS event source", "remove it and give the queue a RedrivePolicy "
                        "(dead-letter queue)")


@rule("LAMBDA-SQS-CONCURRENCY", ESM, message="InvalidParameterValueException: ScalingConfig.MaximumConcurrency is 2 "
      "to 1000", source="https://docs.aws.amazon.com/lambda/latest/api/API_ScalingConfig.html")
def sqs_concurrency(resource: Resource, template: Template) -> Iterator[Violation]:
    """An SQS event source's maximum concurrency is 2 to 1000."""
    value = number(resource.get("ScalingConfig", "MaximumConcurrency"))
    if value is not None and not 2 <= value <= 1000:
        yield Violation(f"MaximumConcurrency={value:g}", "set 2 to 1000")


@rule("LAMBDA-ASYNC-CONFIG", INVOKE_CONFIG,
      message="ValidationException: MaximumRetryAttempts is 0 to 2 and MaximumEventAgeInSeconds 60 to 21600",
      source="https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionEventInvokeConfig.html")
def async_config(resource: Resource, template: Template) -> Iterator[Violation]:
    """Asynchronous invocation: 0-2 retries, an event age of 60-21600 seconds."""
    retries, age = number(resource.get("MaximumRetryAttempts")), number(resource.get("MaximumEventAgeInSeconds"))
    if retries is not None and not 0 <= retries <= 2:
        yield Violation(f"MaximumRetryAttempts={retries:g}", "set 0 to 2")
    if age is not None and not 60 <= age <= 21600:
        yield Violation(f"MaximumEventAgeInSeconds={age:g}", "set 60 to 21600 seconds")


def _alias_named(function: Resource, name: str, template: Template) -> Resource | None:
    return next((a for a in aliases_of(function, template) if a.get("Name") == name), None)


@rule("LAMBDA-ALIAS-ORDER", ESM, INVOKE_CONFIG, "AWS::Lambda::Permission",
      message='"Function not found" / "Function does not exist" (the alias is created after what names it)',
      source="https://github.com/aws/aws-cdk/issues/2084; https://github.com/serverless/serverless/issues/8249")
def alias_order(resource: Resource, template: Template) -> Iterator[Violation]:
    """What names a function's alias (an event source, async config or permission) is created after that alias."""
    function = function_of(resource.get("FunctionName"), template)
    if function is None:
        return
    qualifier = literal_text(resource.get("Qualifier"))
    if qualifier is None and known(resource.get("Qualifier")):
        name = shape(resource.get("FunctionName")) or ""
        qualifier = name.rsplit(":", 1)[1] if re.search(r":[A-Za-z0-9_-]+$", name) else None
    alias = _alias_named(function, qualifier, template) if qualifier else None
    if alias is not None and not template.depends(resource, alias.id):
        yield Violation(f"names alias {qualifier!r} of {function.id} but does not depend on {alias.id}",
                        "refer to the alias itself (its ARN) or add a dependency on it")


@rule("LAMBDA-ALIAS-VERSION", ALIAS, message="ResourceNotFoundException: Function not found (the alias points at "
      "a version of another function)", source="https://docs.aws.amazon.com/lambda/latest/api/API_CreateAlias.html")
def alias_version(resource: Resource, template: Template) -> Iterator[Violation]:
    """An alias points at a version of its own function."""
    version = template.target(resource.get("FunctionVersion"), VERSION)
    if version is None:
        return
    mine, theirs = function_of(resource.get("FunctionName"), template), function_of(version.get("FunctionName"),
                                                                                     template)
    if mine is not None and theirs is not None and mine is not theirs:
        yield Violation(f"FunctionVersion is a version of {theirs.id}, not of {mine.id}", "point the alias at a "
                        "version of its own function")


@rule("LAMBDA-FUNCTION-DESCRIPTION", FUNCTION, VERSION, ALIAS, message="ValidationException: the description is at "
      "most 256 characters", source="https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html")
def description_length(resource: Resource, template: Template) -> Iterator[Violation]:
    """Descriptions of functions, versions and aliases have at most 256 characters."""
    text = literal_text(resource.get("Description"))
    if text is not None and len(text) > 256:
        yield Violation(f"Description of {len(text)} characters ({shown(text, 40)})", "shorten it to 256 characters")

