"""``python -m cdk_app.invoke <cdk.out> <event.json>``: one event through a function's real bundle.

The function runs as in ``python -m cdk_app.local`` (its bundle under ``awslambdaric`` and the
target Python, its environment resolved to local services). When that stack is running on
``--port``, the event goes to its functions (warm instances, the same moto); otherwise a local
AWS is made for this one invocation and stopped after it. The response goes to stdout, logs to
stderr; a function error exits with 1.

Without ``--function`` the event picks it: an SQS batch goes to the function its queue's event
source mapping invokes, an HTTP event to the function behind the API, a warmup ping or a
schedule to a rule's target; ``--function`` takes a logical id, a function name or the
construct path's short form (``Api``, ``Tasks/Worker``), or an unambiguous prefix of one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cdk_app.local.runtime import FunctionSpec, InvokeResult, label_of
from cdk_app.local.template import LocalError, Resolver, StackTemplate, read_stack
from cdk_app.shapes import is_array, is_object


def _event_kind(event: Any) -> str:
    if not is_object(event):
        return "other"
    records = event.get("Records")
    if is_array(records) and records and is_object(records[0]):
        return "sqs" if records[0].get("eventSource") == "aws:sqs" else "other"
    if "requestContext" in event or "httpMethod" in event:
        return "http"
    if event.get("source") == "aws.events" or any("warmup" in str(key) for key in event):
        return "schedule"
    return "other"


def _targets(stack: StackTemplate, resolver: Resolver, kind: str) -> str:
    """The resolved properties of the resources that invoke functions for events of ``kind`` (as text)."""
    types = {"sqs": ("AWS::Lambda::EventSourceMapping",),
             "http": ("AWS::ApiGatewayV2::Integration", "AWS::ApiGateway::Method"),
             "schedule": ("AWS::Events::Rule",)}.get(kind, ())
    return json.dumps([resolver.resolve(r.get("Properties", {})) for r in stack.of_type(*types).values()])


def choose_function(specs: Mapping[str, FunctionSpec], stack: StackTemplate, resolver: Resolver, event: Any,
                    requested: str | None = None) -> FunctionSpec:
    """The function ``requested`` names, or the one the template would send ``event`` to."""
    runnable = {lid: spec for lid, spec in specs.items() if not spec.inline}
    if requested:
        wanted = requested.lower()
        exact = [s for s in runnable.values() if wanted in (s.logical_id.lower(), s.name.lower(), s.label.lower())]
        found = exact or [s for s in runnable.values()
                          if s.logical_id.lower().startswith(wanted) or s.label.lower().startswith(wanted)]
        if len(found) == 1:
            return found[0]
        choices = ", ".join(f"{s.label} ({s.logical_id})" for s in runnable.values())
        raise LocalError(f"--function {requested!r} names {'no' if not found else 'more than one'} function of "
                         f"{stack.name}; choose one of: {choices}")
    invoked_by = _targets(stack, resolver, _event_kind(event))
    candidates = [s for s in runnable.values() if f"function:{s.name}" in invoked_by or f'"{s.name}' in invoked_by]
    if not candidates:
        candidates = list(runnable.values())
    if len(candidates) > 1:
        print(f"invoke: {len(candidates)} functions could take this event; using {candidates[0].label} "
              f"(--function to choose: {', '.join(s.label for s in candidates)})", file=sys.stderr)
    if not candidates:
        raise LocalError(f"{stack.name} has no function to invoke")
    return candidates[0]


def _through_running_stack(state: Mapping[str, Any], spec: FunctionSpec, payload: bytes) -> InvokeResult:
    url = f"{state['lambda_endpoint']}/2015-03-31/functions/{spec.name}/invocations?Qualifier=live"
    request = urllib.request.Request(url, data=payload, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=spec.timeout_s + 30) as response:
        error = response.headers.get("X-Amz-Function-Error")
        return InvokeResult(response.headers.get("x-amzn-RequestId", ""), response.read(), error)


def invoke(assembly: Path | str, event_file: Path | str, *, stack_name: str | None = None,
           function: str | None = None, port: int | None = None) -> InvokeResult:
    """Run the event in ``event_file`` through a function of the stack; logs go to stderr."""
    from cdk_app.local.stack import LocalStack, Options, read_state

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    stack = read_stack(assembly, stack_name)
    try:
        payload = Path(event_file).read_bytes()
        event = json.loads(payload)
    except (OSError, ValueError) as error:
        raise LocalError(f"EVENT={event_file}: {error}; pass a JSON file, e.g. examples/events/http_api_v2.json") \
            from None
    state = read_state(port) if port else None
    if state is not None and state["assembly"] == str(stack.folder) and state["stack"] == stack.name:
        from cdk_app.local.aws import LocalAws

        resolver = Resolver(stack)
        LocalAws(stack, resolver, Path(".")).name_functions()  # names only: nothing is created
        # Names and timeouts only: the running stack has the code. (Keywords: positionally, the timeout used to
        # land in `environment`, and the wait below was always the default 3 s + 30.)
        specs = {lid: FunctionSpec(lid, label_of(stack, lid), name=resolver.ref(lid), arn="", handler="",
                                   runtime="", code=Path("."), layers=(), environment={},
                                   timeout_s=float(r.get("Properties", {}).get("Timeout", 3)),
                                   inline="ZipFile" in r.get("Properties", {}).get("Code", {}))
                 for lid, r in stack.of_type("AWS::Lambda::Function").items()}
        spec = choose_function(specs, stack, resolver, event, function)
        log(f"invoke: {spec.label} ({spec.name}) of the stack running on port {port}")
        return _through_running_stack(state, spec, payload)
    local = LocalStack(stack, Options(port=0, serve=False), log=log)
    with local:
        assert local.functions is not None
        spec = choose_function(local.functions.specs, stack, local.resolver, event, function)
        log(f"invoke: {spec.label} ({spec.name}), with a local AWS for this invocation")
        return local.functions.invoke(f"{spec.name}:live", payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdk_app.invoke", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("assembly", help="the cloud assembly folder `cdk synth` wrote (cdk.out)")
    parser.add_argument("event", help="a JSON file holding the event (samples: examples/events/)")
    parser.add_argument("--stack", help="the stack (default: the only one)")
    parser.add_argument("--function", help="logical id, name or short path (Api, Tasks/Worker) of the function")
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_PORT") or 3000),
                        help="use the local stack running on this port, if it runs this assembly (default 3000)")
    args = parser.parse_args(argv)
    try:
        result = invoke(args.assembly, args.event, stack_name=args.stack, function=args.function, port=args.port)
    except (LocalError, urllib.error.URLError) as error:
        print(f"invoke: {error}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(json.loads(result.payload), indent=2))
    except ValueError:
        print(result.payload.decode(errors="replace"))
    if not result.ok:
        print(f"invoke: the function failed ({result.error})", file=sys.stderr)
        return 1
    return 0
