"""One synthesized stack, running locally: local AWS, the functions, the gateways, the event sources.

:class:`LocalStack` starts them in dependency order and stops them in reverse:

1. :class:`cdk_app.local.aws.LocalAws`: moto (and redis-server) holding the template's resources;
2. :class:`cdk_app.local.lambda_api.LocalLambda`: the functions, from their bundles, with the
   template's environment resolved to those local resources;
3. a :class:`cdk_app.local.gateway.Gateway` per API (the first on ``port``, the next on ``port+1``...);
4. the SQS event source mappings and the schedules; provisioned concurrency starts its instances.

While it runs, a state file (:func:`state_file`) tells ``python -m cdk_app.local.token`` and
``python -m cdk_app.invoke`` where everything is.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi_lambda.constants import AUTH_ISSUER_VARIABLE, AUTH_JWKS_URL_VARIABLE

from cdk_app.local.aws import ACCESS_KEY_ID, SECRET_ACCESS_KEY, LocalAws
from cdk_app.local.events import Scheduler, SqsEventSource, schedules, sqs_mappings
from cdk_app.local.gateway import Gateway, Keys, name_apis, read_apis
from cdk_app.local.identity import LOCAL_EMAIL, LOCAL_PASSWORD
from cdk_app.local.lambda_api import LocalLambda
from cdk_app.local.runtime import DEFAULT_MAX_INSTANCES, Log, function_specs, print_log, runtime_python
from cdk_app.local.template import Resolver, StackTemplate


def state_file(port: int) -> Path:
    """Where a local stack serving on ``port`` describes itself."""
    return Path(tempfile.gettempdir()) / f"fastapi-lambda-local-{port}.json"


def read_state(port: int) -> dict[str, Any] | None:
    """The running local stack on ``port`` (None when there is none, or it is gone)."""
    path = state_file(port)
    try:
        state = json.loads(path.read_text())
        os.kill(state["pid"], 0)
    except (OSError, ValueError, KeyError):
        return None
    return state


@dataclass
class Options:
    """How to run: ports and local limits; nothing here changes what the template says."""

    port: int = 3000
    max_instances: int = DEFAULT_MAX_INSTANCES
    #: Failed SQS messages become visible again after this many seconds instead of the queue's
    #: visibility timeout (AWS waits the full timeout; shorter makes retries and dead-lettering quick).
    sqs_retry_seconds: float | None = None
    #: Fire every schedule once as soon as the stack is up (then on its rate).
    schedules_now: bool = False
    runtime_cache: Path | None = None
    #: Serve the APIs and run the event sources and schedules (off: functions only, for one invoke).
    serve: bool = True


class LocalStack:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager)."""

    def __init__(self, stack: StackTemplate, options: Options | None = None, *, log: Log = print_log) -> None:
        self.stack, self.options, self.log = stack, options or Options(), log
        self.work = Path(tempfile.mkdtemp(prefix="fastapi-lambda-local-"))
        self.resolver = Resolver(stack)
        self.state_path: Path | None = None  # where the running stack's state is written (make token, invoke)
        self.user = (LOCAL_EMAIL, LOCAL_PASSWORD) if stack.of_type("AWS::Cognito::UserPool") else None
        self.aws = LocalAws(stack, self.resolver, self.work, user_email=self.user and self.user[0],
                            user_password=self.user and self.user[1])
        self.functions: LocalLambda | None = None
        self.gateways: list[Gateway] = []
        self.sources: list[SqsEventSource] = []
        self.scheduler: Scheduler | None = None
        self.started_at = time.perf_counter()
        self.ready_s = 0.0

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.gateways[0].url if self.gateways else ""

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        stack, options = self.stack, self.options
        self.aws.start()
        self.aws.name_functions()
        name_apis(stack, self.resolver)
        self.aws.provision()
        specs = function_specs(stack, self.resolver, self.work)
        issuers = {identity["issuer"]: identity["jwks_url"] for identity in self.aws.identities.values()}
        for spec in specs.values():  # a function that verifies tokens itself fetches the local pool's keys
            issuer = spec.environment.get(AUTH_ISSUER_VARIABLE)
            if issuer in issuers and AUTH_JWKS_URL_VARIABLE not in spec.environment:
                spec.environment[AUTH_JWKS_URL_VARIABLE] = issuers[issuer]
        services = {"AWS_ENDPOINT_URL": self.aws.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
                    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY, "AWS_SESSION_TOKEN": "local",
                    **self.aws.function_environment}
        runtimes: dict[str, Path] = {}

        def python(version: str) -> Path:
            if version not in runtimes:
                runtimes[version] = runtime_python(version, options.runtime_cache, self.log)
            return runtimes[version]

        self.functions = LocalLambda(specs, python=python, services=services, region=stack.region, work=self.work,
                                     max_instances=options.max_instances, log=self.log).serve()
        for spec in specs.values():  # made now, not on the first request: a missing interpreter shows at start
            if not spec.inline and spec.runtime.startswith("python"):
                python(spec.python_version)
        if not options.serve:
            self.ready_s = time.perf_counter() - self.started_at
            return
        keys = Keys(issuers)
        for number, api in enumerate(read_apis(stack, self.resolver)):
            self.gateways.append(Gateway(api, self.functions, keys, region=stack.region, account=stack.account,
                                         log=self.log).serve(options.port + number if options.port else 0))
        for mapping in sqs_mappings(stack, self.resolver):
            self.sources.append(SqsEventSource(mapping, self.aws.client("sqs"), self.functions, region=stack.region,
                                               pollers=options.max_instances,
                                               retry_after_s=options.sqs_retry_seconds, log=self.log).start())
        self.scheduler = Scheduler(schedules(stack, self.resolver, self.functions), self.functions,
                                   log=self.log).start()
        for spec in specs.values():
            if spec.provisioned_concurrency:
                self.functions.pool(spec).prewarm(spec.provisioned_concurrency)
        if options.schedules_now:
            self.scheduler.fire_all()
        self.ready_s = time.perf_counter() - self.started_at
        self._write_state()

    def summary(self) -> str:
        assert self.functions is not None
        parts = [f"{g.api.name}: {'HTTP' if g.api.kind == 'http' else 'REST'} API {g.url}" for g in self.gateways]
        parts += [f"{len(self.functions.specs)} function(s)", f"moto {self.aws.endpoint}",
                  f"Lambda API {self.functions.endpoint}"]
        return "; ".join(parts)

    def _write_state(self) -> None:
        assert self.functions is not None
        state = {
            "pid": os.getpid(), "stack": self.stack.name, "assembly": str(self.stack.folder),
            "api_url": self.url, "apis": [g.url for g in self.gateways], "moto_endpoint": self.aws.endpoint,
            "lambda_endpoint": self.functions.endpoint, "region": self.stack.region,
            "identities": self.aws.identities,
            "user": {"email": self.user[0], "password": self.user[1]} if self.user else None,
            "children": self.child_pids(),
        }
        if self.gateways and (server := self.gateways[0].server) is not None:
            path = state_file(server.server_address[1])
            path.write_text(json.dumps(state, indent=1))
            self.state_path = path

    def child_pids(self) -> list[int]:
        pids = [p.pid for p in (self.aws.process, *(c.process for c in self.aws.caches)) if p is not None]
        if self.functions is not None:
            pids += [i.process.pid for pool in self.functions.pools.values() for i in pool.instances]
        return pids

    def stop(self) -> None:
        """Stop everything this started, newest first; safe to call twice."""
        if self.state_path is not None:
            self.state_path.unlink(missing_ok=True)
            self.state_path = None
        if self.scheduler is not None:
            self.scheduler.stop()
        for source in self.sources:
            source.stop()
        for gateway in self.gateways:
            gateway.stop()
        if self.functions is not None:
            self.functions.stop()
        self.aws.stop()
        self.sources, self.gateways = [], []
        shutil.rmtree(self.work, ignore_errors=True)
