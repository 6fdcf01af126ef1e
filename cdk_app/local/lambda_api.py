"""The stack's functions by name, and Lambda's Invoke API in front of them.

:class:`LocalLambda` finds a function the way Lambda's API names one (name, ``name:alias``,
full or partial ARN, with or without a qualifier), keeps one :class:`FunctionPool` per
function (made on first use), and serves ``POST /2015-03-31/functions/<name>/invocations``
on a local port, so the SDK inside a function (``AWS_ENDPOINT_URL_LAMBDA``) reaches the
local functions: the warmup fan-out invokes its own alias that way, and so can any client.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path

from cdk_app.local.processes import Handler, QuietServer
from cdk_app.local.runtime import (
    DEFAULT_MAX_INSTANCES,
    FunctionPool,
    FunctionSpec,
    InvokeResult,
    Log,
    Throttled,
    print_log,
)
from cdk_app.local.template import LocalError


class LocalLambda:
    """The functions of one stack, run from their bundles (see :mod:`cdk_app.local.runtime`)."""

    def __init__(self, specs: Mapping[str, FunctionSpec], *, python: Callable[[str], Path],
                 services: Mapping[str, str], region: str, work: Path, max_instances: int = DEFAULT_MAX_INSTANCES,
                 log: Log = print_log) -> None:
        """``python(version)`` gives the runtime interpreter of a Python version (see ``runtime_python``)."""
        self.specs, self.python, self.services, self.region, self.work = dict(specs), python, dict(services), region, work
        self.max_instances, self.log = max_instances, log
        self.pools: dict[str, FunctionPool] = {}
        self.lock = threading.Lock()
        self.server: QuietServer | None = None

    def find(self, reference: str) -> tuple[FunctionSpec, str | None]:
        """The function ``reference`` names (name, ``name:qualifier`` or ARN) and the qualifier, if any."""
        parts = reference.split(":")
        if reference.startswith("arn:"):  # arn:aws:lambda:region:account:function:name[:qualifier]
            name, qualifier = parts[6] if len(parts) > 6 else "", parts[7] if len(parts) > 7 else None
        elif len(parts) >= 3 and parts[1] == "function":  # account:function:name[:qualifier]
            name, qualifier = parts[2], parts[3] if len(parts) > 3 else None
        else:
            name, qualifier = parts[0], parts[1] if len(parts) > 1 else None
        for spec in self.specs.values():
            if name in (spec.name, spec.logical_id):
                return spec, qualifier
        raise LocalError(f"Function not found: {reference}")

    def pool(self, spec: FunctionSpec) -> FunctionPool:
        with self.lock:
            if spec.logical_id not in self.pools:
                services = {**self.services, **({"AWS_ENDPOINT_URL_LAMBDA": self.endpoint} if self.server else {})}
                python = self.python(spec.python_version)
                self.pools[spec.logical_id] = FunctionPool(spec, python=python, services=services,
                                                           region=self.region, work=self.work,
                                                           max_instances=self.max_instances, log=self.log)
            return self.pools[spec.logical_id]

    def invoke(self, reference: str, payload: bytes, *, client_context: str | None = None,
               throttle: bool = True) -> InvokeResult:
        spec, qualifier = self.find(reference)
        return self.pool(spec).invoke(payload, qualifier=qualifier or "", client_context=client_context,
                                      throttle=throttle)

    def invoke_async(self, reference: str, payload: bytes, *, what: str) -> None:
        """Invoke in the background (``InvocationType=Event``), logging a failure; no retries."""

        def run() -> None:
            try:
                result = self.invoke(reference, payload)
            except (LocalError, Throttled) as error:
                self.log(f"local: {what}: {error}")
                return
            if not result.ok:
                self.log(f"local: {what}: the function failed ({result.error}); not retried")

        threading.Thread(target=run, name=f"async-{what}", daemon=True).start()

    # --- Lambda's Invoke API --------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def serve(self) -> LocalLambda:
        local = self

        class InvokeApi(Handler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.body()
                url = urllib.parse.urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[:2] != ["2015-03-31", "functions"] or parts[3] != "invocations":
                    return self.error(404, "UnknownOperationException", f"{url.path} is not served locally")
                name = urllib.parse.unquote(parts[2])
                qualifier = urllib.parse.parse_qs(url.query).get("Qualifier", [None])[0]
                reference = f"{name}:{qualifier}" if qualifier else name
                try:
                    local.find(reference)
                except LocalError as error:
                    return self.error(404, "ResourceNotFoundException", str(error))
                kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
                if kind == "DryRun":
                    return self.answer(204, b"")
                if kind == "Event":
                    local.invoke_async(reference, body, what=f"async invoke of {name}")
                    return self.answer(202, b"")
                try:
                    result = local.invoke(reference, body, client_context=self.headers.get("X-Amz-Client-Context"))
                except Throttled as error:
                    return self.error(429, "TooManyRequestsException", str(error))
                headers = {"X-Amz-Executed-Version": "1"}
                if not result.ok:
                    headers["X-Amz-Function-Error"] = "Unhandled"
                self.answer(200, result.payload, headers)

            def error(self, status: int, kind: str, message: str) -> None:
                self.answer(status, json.dumps({"Type": "User", "message": message}).encode(),
                            {"x-amzn-ErrorType": kind})

            def answer(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
                self.reply(status, body, {"Content-Type": "application/json", **(headers or {})})

        self.server = QuietServer(("127.0.0.1", 0), InvokeApi)
        threading.Thread(target=self.server.serve_forever, name="lambda-invoke-api", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        with self.lock:
            pools = list(self.pools.values())
        for pool in pools:
            pool.stop()
