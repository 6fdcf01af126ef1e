"""Functions from their real bundles: Lambda's runtime interface client behind a Runtime API of our own.

Each function of the template runs as Lambda runs it: its code asset and layers (from
``cdk.out``, never written to), its handler string, its environment (references resolved to
the local services), under the target Python with ``awslambdaric`` (the client Lambda's own
Python runtimes use) and the AWS SDK, as Lambda provides them. Each execution environment
(:class:`Instance`) is one process talking to its own Runtime API (:class:`RuntimeApi`,
``/2018-06-01/runtime/...``); a :class:`FunctionPool` keeps up to a small number of them
per function, reuses idle ones and starts more under concurrent load. Every invocation is
logged as Lambda reports it: duration, memory, and for a cold start the init (or SnapStart
restore) duration.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdk_app.local.processes import CHILD_GROUP, Handler, QuietServer, stop_process
from cdk_app.local.template import LocalError, Resolver, StackTemplate

#: What Lambda's Python runtime provides besides the bundle: its runtime interface client, and
#: the AWS SDK (the bundler leaves boto3 out of every bundle for that reason).
RUNTIME_PACKAGES = ("awslambdaric==4.2.2", "boto3==1.44.5")
API_VERSION = "2018-06-01"
#: How long an init may take here. Lambda allows 10 s (then retries init within the function timeout);
#: a laptop under load, importing from a cold disk, can be several times slower than Lambda.
INIT_TIMEOUT_S = 60.0
#: Execution environments per function when nothing else limits them (each is a process).
DEFAULT_MAX_INSTANCES = 3
#: Every local invocation runs the published version the alias points to (where SnapStart applies).
VERSION = "1"

Log = Callable[[str], None]


def print_log(line: str) -> None:
    print(line, flush=True)


# --- the target Python with the runtime interface client ------------------------------------------

def default_cache() -> Path:
    """Where the runtime's virtual environments live (``FASTAPI_LAMBDA_LOCAL_CACHE`` overrides)."""
    configured = os.environ.get("FASTAPI_LAMBDA_LOCAL_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastapi-lambda" / "local"


def runtime_python(version: str, cache: Path | None = None, log: Log = print_log) -> Path:
    """The interpreter of a virtual environment of Python ``version`` holding :data:`RUNTIME_PACKAGES`.

    Made once per machine (and set of pins) from an interpreter found the way the bundler
    finds one (PATH, ``py``, pyenv, uv; ``PYTHON_<X>_<Y>`` overrides); pip installs wheels only.
    """
    cache = cache or default_cache()
    pins = hashlib.sha256(" ".join(RUNTIME_PACKAGES).encode()).hexdigest()[:8]
    venv = cache / f"python{version}-{pins}"
    python = venv / "bin" / "python"
    if (venv / ".complete").is_file():
        return python
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be making it right now
        if (venv / ".complete").is_file():
            return python
        from cdk_app.bundling.interpreters import find_python, missing_interpreter_message

        interpreter = find_python(version)
        if interpreter is None:
            raise LocalError(missing_interpreter_message(version))
        log(f"local: making the Python {version} runtime ({', '.join(RUNTIME_PACKAGES)}) in {venv}")
        shutil.rmtree(venv, ignore_errors=True)
        for command in ([*interpreter, "-m", "venv", str(venv)],
                        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                         "--only-binary=:all:", *RUNTIME_PACKAGES]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise LocalError(f"could not make the Python {version} runtime: {' '.join(command[:4])} failed:\n"
                                 + (done.stderr or done.stdout)[-2000:])
        (venv / ".complete").write_text(" ".join(RUNTIME_PACKAGES))
    return python


# --- what a function is --------------------------------------------------------------------------

@dataclass
class FunctionSpec:
    """One ``AWS::Lambda::Function`` of the template, as the local runtime needs it."""

    logical_id: str
    label: str
    name: str
    arn: str
    handler: str
    runtime: str
    code: Path
    layers: tuple[Path, ...]
    environment: dict[str, str]
    timeout_s: float = 3.0
    memory_mb: int = 128
    architecture: str = "x86_64"
    log_format: str = "Text"
    log_level: str | None = None
    snap_start: bool = False
    reserved_concurrency: int | None = None
    provisioned_concurrency: int = 0
    inline: bool = False  # code in the template (a custom resource's handler), not an asset

    @property
    def python_version(self) -> str:
        if not self.runtime.startswith("python"):
            raise LocalError(f"{self.label}: runtime {self.runtime!r} does not run locally (Python functions only)")
        return self.runtime.removeprefix("python")


def label_of(stack: StackTemplate, logical_id: str) -> str:
    """A short name for logs: the construct path without the stack and the trailing ``Function/Resource``."""
    parts = stack.path_of(logical_id).split("/")[1:]
    while parts and parts[-1] in ("Resource", "Function"):
        parts.pop()
    return "/".join(parts) or logical_id


def function_specs(stack: StackTemplate, resolver: Resolver, work: Path) -> dict[str, FunctionSpec]:
    """Every function of the template, by logical id, with its environment resolved."""
    provisioned: dict[str, int] = {}
    for alias in stack.of_type("AWS::Lambda::Alias").values():
        properties = alias.get("Properties", {})
        config = properties.get("ProvisionedConcurrencyConfig")
        if config:
            provisioned[resolver.text(properties["FunctionName"])] = int(config["ProvisionedConcurrentExecutions"])
    specs: dict[str, FunctionSpec] = {}
    for logical_id, resource in stack.of_type("AWS::Lambda::Function").items():
        p = resource.get("Properties", {})
        name = resolver.text({"Ref": logical_id})
        if "ZipFile" in p.get("Code", {}):  # inline code: Lambda writes it to index.py
            code = work / "inline" / logical_id
            code.mkdir(parents=True, exist_ok=True)
            (code / "index.py").write_text(resolver.text(p["Code"]["ZipFile"]))
        else:
            code = stack.asset(logical_id, work)
        layers: list[Path] = []
        for layer in resolver.resolve(p.get("Layers", [])):
            owner = next((lid for lid, ph in resolver.physical.items() if ph.ref == layer
                          and stack.resources[lid]["Type"] == "AWS::Lambda::LayerVersion"), None)
            if owner is None:
                raise LocalError(f"{label_of(stack, logical_id)}: layer {layer} is not in this stack, so its content "
                                 "is not in the assembly; only the stack's own layers run locally")
            layers.append(stack.asset(owner, work))
        logging = p.get("LoggingConfig", {})
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id, label=label_of(stack, logical_id), name=name,
            arn=resolver.text({"Fn::GetAtt": [logical_id, "Arn"]}), handler=p.get("Handler", "index.handler"),
            runtime=p.get("Runtime", ""), code=code, layers=tuple(layers),
            environment={k: resolver.text(v) for k, v in p.get("Environment", {}).get("Variables", {}).items()},
            timeout_s=float(p.get("Timeout", 3)), memory_mb=int(p.get("MemorySize", 128)),
            architecture=(p.get("Architectures") or ["x86_64"])[0],
            log_format=logging.get("LogFormat", "Text"), log_level=logging.get("ApplicationLogLevel"),
            snap_start=p.get("SnapStart", {}).get("ApplyOn") == "PublishedVersions",
            reserved_concurrency=int(p["ReservedConcurrentExecutions"]) if "ReservedConcurrentExecutions" in p else None,
            provisioned_concurrency=provisioned.get(name, 0), inline="ZipFile" in p.get("Code", {}),
        )
    return specs


def host_architecture() -> str:
    import platform

    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


# --- one invocation ------------------------------------------------------------------------------

@dataclass
class Invocation:
    """An event on its way through an instance, and what came back."""

    payload: bytes
    invoked_arn: str
    deadline_ms: int = 0
    client_context: str | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    trace_id: str = field(default_factory=lambda: (
        f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"))
    done: threading.Event = field(default_factory=threading.Event)
    response: bytes = b""
    error_type: str | None = None


@dataclass
class InvokeResult:
    """What the caller gets: the payload, and ``error`` ("Unhandled", "Sandbox.Timedout", ...) if it failed."""

    request_id: str
    payload: bytes
    error: str | None = None
    duration_ms: float = 0.0
    init_ms: float | None = None
    restore_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


class Throttled(RuntimeError):
    """Every execution environment the function may have is busy (its reserved concurrency)."""


def _error_payload(request_id: str, error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: {message}"}).encode()


# --- the Runtime API --------------------------------------------------------------------------------

class RuntimeApi(Handler):
    """The Runtime API of one execution environment (``server.instance``), as the runtime client uses it."""

    @property
    def instance(self) -> Instance:
        """The execution environment this server serves (each has a server of its own)."""
        server = self.server
        if not isinstance(server, _RuntimeServer):
            raise TypeError(f"RuntimeApi serves a _RuntimeServer, not {type(server).__name__}")
        return server.instance

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        instance = self.instance
        if self.path == f"/{API_VERSION}/runtime/invocation/next":
            invocation = instance.next_invocation()
            if invocation is None:  # stopping: the process is about to be ended
                self.reply(500, b'{"errorType":"Runtime.Stopping"}')
                return
            headers = {
                "Content-Type": "application/json",  # without it the client hands the handler bytes
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": invocation.invoked_arn,
                "Lambda-Runtime-Trace-Id": invocation.trace_id,
            }
            if invocation.client_context:
                headers["Lambda-Runtime-Client-Context"] = invocation.client_context
            self.reply(200, invocation.payload, headers)
        elif self.path == f"/{API_VERSION}/runtime/restore/next":
            instance.restoring()
            self.reply(200)
        else:
            self.reply(404, b'{"errorType":"NotFound"}')

    def do_POST(self) -> None:  # noqa: N802
        instance, body = self.instance, self.body()
        parts = self.path.strip("/").split("/")
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        if parts[1:3] == ["runtime", "invocation"] and len(parts) == 5 and parts[4] in ("response", "error"):
            accepted = instance.finish(parts[3], body, error_type or "Unhandled" if parts[4] == "error" else None)
            self.reply(202 if accepted else 400, b'{"status":"OK"}' if accepted else b'{"errorType":"InvalidRequestID"}')
        elif self.path in (f"/{API_VERSION}/runtime/init/error", f"/{API_VERSION}/runtime/restore/error"):
            instance.init_failed(error_type or "Runtime.Unknown", body)
            self.reply(202, b'{"status":"OK"}')
        else:
            self.reply(404, b'{"errorType":"NotFound"}')


class _RuntimeServer(QuietServer):
    instance: Instance


# --- execution environments ------------------------------------------------------------------------

class Instance:
    """One execution environment: ``awslambdaric`` in a process of its own, and its Runtime API."""

    def __init__(self, pool: FunctionPool, number: int, initialization: str) -> None:
        self.pool, self.number, self.initialization = pool, number, initialization
        self.spec = pool.spec
        self.label = f"{self.spec.label}#{number}"
        self.inbox: list[Invocation | None] = []
        self.inbox_ready = threading.Condition()
        self.current: Invocation | None = None
        self.ready = threading.Event()  # set when it first asks for an invocation (init done)
        self.dead = False
        self.init_error: str | None = None
        self.init_ms: float | None = None
        self.restore_ms: float | None = None
        self.reported_init = False
        self.started = time.perf_counter()
        self._restore_started: float | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.spec.logical_id[:20]}-{number}-", dir=pool.work))
        self.server = _RuntimeServer(("127.0.0.1", 0), RuntimeApi)
        self.server.instance = self
        threading.Thread(target=self.server.serve_forever, name=f"runtime-api-{self.label}", daemon=True).start()
        self.process = subprocess.Popen(
            [str(pool.python), "-m", "awslambdaric", self.spec.handler], cwd=self.spec.code,
            env=self._environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            process_group=CHILD_GROUP)
        threading.Thread(target=self._forward_output, name=f"output-{self.label}", daemon=True).start()

    def _environment(self) -> dict[str, str]:
        spec, pool = self.spec, self.pool
        version = VERSION
        paths = [str(spec.code)]
        for layer in reversed(spec.layers):  # a later layer's files win, as when Lambda extracts them to /opt
            paths += [str(layer / "python" / "lib" / f"python{spec.python_version}" / "site-packages"),
                      str(layer / "python")]
        reserved = {
            "_HANDLER": spec.handler, "LAMBDA_TASK_ROOT": str(spec.code), "LAMBDA_RUNTIME_DIR": str(pool.python.parent),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.server.server_address[1]}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}", "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": version, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(UTC):%Y/%m/%d}/[{version}]{uuid.uuid4().hex}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": self.initialization,
            "AWS_LAMBDA_LOG_FORMAT": spec.log_format.upper() if spec.log_format else "TEXT",
            "AWS_REGION": pool.region, "AWS_DEFAULT_REGION": pool.region,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR", "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
            "TZ": ":UTC", "LANG": "en_US.UTF-8", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.pathsep.join(paths),
            # /var/task and /opt are read-only on Lambda: nothing may be written into the bundle.
            "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(self.tmp), "HOME": str(self.tmp),
        }
        if spec.log_format.upper() == "JSON" and spec.log_level:
            reserved["AWS_LAMBDA_LOG_LEVEL"] = spec.log_level
        return {**spec.environment, **pool.services, **reserved}

    def _forward_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.pool.log(f"{self.label} | {line.decode(errors='replace').rstrip()}")
        code = self.process.wait()
        self.dead = True
        if not self.ready.is_set() and self.init_error is None:
            self.init_error = f"Runtime.ExitError: the runtime exited with code {code} during init"
        current = self.current
        if current is not None and not current.done.is_set():
            current.error_type = "Runtime.ExitError"
            current.response = _error_payload(current.request_id, "Runtime.ExitError",
                                              f"Runtime exited with error: exit status {code}")
            current.done.set()
        self.ready.set()  # wake whoever waits for init
        self.pool.released(self)

    # Called from the Runtime API's threads.

    def restoring(self) -> None:
        """SnapStart: init is done (the snapshot would be taken here); restore starts now."""
        self.init_ms = (time.perf_counter() - self.started) * 1000
        self._restore_started = time.perf_counter()

    def next_invocation(self) -> Invocation | None:
        if not self.ready.is_set():
            now = time.perf_counter()
            if self._restore_started is not None:
                self.restore_ms = (now - self._restore_started) * 1000
            else:
                self.init_ms = (now - self.started) * 1000
            self.ready.set()
        with self.inbox_ready:
            while not self.inbox:
                self.inbox_ready.wait()
            return self.inbox.pop(0)

    def finish(self, request_id: str, body: bytes, error_type: str | None) -> bool:
        current = self.current
        if current is None or current.request_id != request_id or current.done.is_set():
            return False
        current.response, current.error_type = body, error_type
        current.done.set()
        return True

    def init_failed(self, error_type: str, body: bytes) -> None:
        self.init_error = f"{error_type}: {body.decode(errors='replace')[:2000]}"

    # Called by the pool.

    def run(self, invocation: Invocation) -> None:
        """Hand ``invocation`` to the runtime and wait for its answer, or end the instance at the timeout."""
        self.current = invocation
        with self.inbox_ready:
            self.inbox.append(invocation)
            self.inbox_ready.notify()
        remaining = invocation.deadline_ms / 1000 - time.time()
        if not invocation.done.wait(max(0.0, remaining)):
            invocation.error_type = "Sandbox.Timedout"
            invocation.response = _error_payload(invocation.request_id, "Sandbox.Timedout",
                                                 f"Task timed out after {self.spec.timeout_s:.2f} seconds")
            invocation.done.set()
            self.pool.log(f"{self.label} | {invocation.request_id} Task timed out after {self.spec.timeout_s:.2f} "
                          "seconds")
            self.stop()

    def max_memory_mb(self) -> int:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
        except OSError:
            pass
        return 0

    def stop(self) -> None:
        stop_process(self.process, timeout=5)
        with self.inbox_ready:
            self.inbox.append(None)
            self.inbox_ready.notify_all()
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class FunctionPool:
    """The execution environments of one function: idle ones are reused, more start under load.

    At most ``max_instances`` run at once (a local cap; the callers wait for one to free
    up), and never more than the function's reserved concurrency (beyond it an invocation
    is throttled, as on Lambda).
    """

    def __init__(self, spec: FunctionSpec, *, python: Path, services: Mapping[str, str], region: str, work: Path,
                 max_instances: int = DEFAULT_MAX_INSTANCES, log: Log = print_log) -> None:
        if spec.architecture != host_architecture():
            raise LocalError(f"{spec.label}: its bundle is built for {spec.architecture} and this machine runs "
                             f"{host_architecture()}; synthesize it for {host_architecture()} (make local does)")
        self.spec, self.python, self.services, self.region, self.work = spec, python, dict(services), region, work
        self.log = log
        self.limit = min(max_instances, spec.reserved_concurrency or max_instances)
        self.instances: list[Instance] = []
        self.idle: list[Instance] = []
        self.changed = threading.Condition()
        self.numbers = 0
        self.closed = False

    def _spawn(self, initialization: str) -> Instance:
        self.numbers += 1
        instance = Instance(self, self.numbers, initialization)
        self.instances.append(instance)
        return instance

    def prewarm(self, count: int, initialization: str = "provisioned-concurrency") -> None:
        """Start ``count`` environments before traffic (provisioned concurrency) and wait for their init."""
        with self.changed:
            started = [self._spawn(initialization) for _ in range(min(count, self.limit - len(self.instances)))]
        for instance in started:
            self._await_init(instance)
            with self.changed:
                self.idle.append(instance)
                self.changed.notify_all()

    def _await_init(self, instance: Instance) -> None:
        if not instance.ready.wait(max(INIT_TIMEOUT_S, self.spec.timeout_s)) or instance.init_error or instance.dead:
            error = instance.init_error or "Runtime.InitTimeout: init did not finish in time"
            instance.stop()
            raise LocalError(f"{self.spec.label}: init failed: {error}")
        self.log(f"{instance.label} | INIT Duration: {instance.init_ms:.2f} ms"
                 + (f" Restore Duration: {instance.restore_ms:.2f} ms" if instance.restore_ms is not None else "")
                 + f" ({instance.initialization})")

    def _acquire(self, throttle: bool) -> tuple[Instance, bool]:
        with self.changed:
            while True:
                if self.closed:
                    raise LocalError(f"{self.spec.label} is stopping")
                if self.idle:
                    return self.idle.pop(), False  # the most recently used, as Lambda tends to
                if len(self.instances) < self.limit:
                    return self._spawn("snap-start" if self.spec.snap_start else "on-demand"), True
                if throttle and self.spec.reserved_concurrency and len(self.instances) >= \
                        self.spec.reserved_concurrency:
                    raise Throttled(f"Rate Exceeded: {self.spec.label} runs at its reserved concurrency "
                                    f"({self.spec.reserved_concurrency})")
                self.changed.wait()

    def released(self, instance: Instance) -> None:
        """An instance ended: forget it, so another can start in its place."""
        with self.changed:
            if instance in self.instances:
                self.instances.remove(instance)
            if instance in self.idle:
                self.idle.remove(instance)
            self.changed.notify_all()

    def invoke(self, payload: bytes, *, qualifier: str = "live", client_context: str | None = None,
               throttle: bool = True) -> InvokeResult:
        """Run one event; a function error comes back in the result (``error``), never as an exception."""
        instance, cold = self._acquire(throttle)
        if cold:
            try:
                self._await_init(instance)
            except LocalError as error:
                request_id = str(uuid.uuid4())
                return InvokeResult(request_id, _error_payload(request_id, "Runtime.InitError", str(error)),
                                    "Runtime.InitError")
        invocation = Invocation(payload, f"{self.spec.arn}:{qualifier}" if qualifier else self.spec.arn,
                                deadline_ms=int((time.time() + self.spec.timeout_s) * 1000),
                                client_context=client_context)
        started = time.perf_counter()
        instance.run(invocation)
        duration = (time.perf_counter() - started) * 1000
        result = InvokeResult(invocation.request_id, invocation.response, invocation.error_type, duration,
                              instance.init_ms if not instance.reported_init else None,
                              instance.restore_ms if not instance.reported_init else None)
        instance.reported_init = True
        self.log(f"{instance.label} | REPORT RequestId: {invocation.request_id} Duration: {duration:.2f} ms "
                 f"Billed Duration: {int(duration) + 1} ms Memory Size: {self.spec.memory_mb} MB "
                 f"Max Memory Used: {instance.max_memory_mb()} MB"
                 + (f" Init Duration: {result.init_ms:.2f} ms" if result.init_ms is not None else "")
                 + (f" Restore Duration: {result.restore_ms:.2f} ms" if result.restore_ms is not None else "")
                 + (f" Status: error ({result.error})" if result.error else ""))
        with self.changed:
            if not instance.dead and instance.process.poll() is None:
                self.idle.append(instance)
            self.changed.notify_all()
        return result

    def stop(self) -> None:
        with self.changed:
            self.closed = True
            instances = list(self.instances)
            self.changed.notify_all()
        for instance in instances:
            instance.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m cdk_app.local.runtime [3.13 ...]``: make the runtimes now (``make local`` does it during synth)."""
    versions = (argv if argv is not None else sys.argv[1:]) or ["3.13"]
    try:
        for version in versions:
            print(runtime_python(version))
    except LocalError as error:
        print(f"local: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
