"""Cold-start and warm-request benchmark: our Lambda bundle vs the article's reference.

Run from the repository root:  .venv/bin/python bench/run.py [--runs N] [--quick]
                                [--python-version 3.13] [--out bench/out/results.json]
                                [--assembly .local/cdk.out.dev] [--env dev] [--function Api]
Everything it builds or writes goes to bench/out/ (see bench/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # no __pycache__ next to bench/ or cdk_app/: bench/out is the only output

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
CHILD = BENCH / "child.py"
EVENTS_PY = BENCH / "events.py"
REFERENCE_REQUIREMENTS = BENCH / "reference-requirements.txt"
RUNTIME_REQUIREMENTS = BENCH / "runtime-requirements.txt"  # the SDK that Lambda's /var/runtime provides
MIN_RUNS = 15
WARMUP_CALLS, TIMED_CALLS = 300, 3000
PING_CALLS = 30000  # a warmup ping costs about a microsecond: many more calls for a stable figure
TASK_CALLS, TASK_BATCHES = 200, 20  # each a few ms against moto
ITEM_HITS, ITEM_MISSES, ITEMS_DOWN = 2000, 20, 10  # a miss waits for the source, a closed breaker for the budget
ITEM_SOURCE_DELAY_MS = 50  # the example's slow source, shortened: a miss costs this plus the cache's round trips
GUARD_ROUNDS, GUARD_CALLS = 20, 500  # alternating rounds of the guard's A/B; the fastest round of each counts

sys.path.insert(0, str(REPO))  # for cdk_app, which also loads aws_cdk/jsii
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@dataclass(frozen=True)
class Variant:
    """One bundle under test, laid out as Lambda would load it."""

    name: str
    path: tuple[Path, ...]  # PYTHONPATH entries, in Lambda's order (/var/task, /opt/python, /var/runtime)
    module: str  # the handler's module, what a cold start imports
    handler: str  # "module:attribute"
    env: dict[str, str] = field(default_factory=dict)  # function configuration, e.g. IMPORT_MODE


@dataclass(frozen=True)
class Metric:
    key: str  # field of a child's JSON sample
    label: str
    # Highest acceptable median: of the ratio first/second variant when a scenario compares
    # two or more (the first against each other), of the metric itself when it runs one. None: informational.
    target: float | None = None
    digits: int = 1  # decimals in the table
    # With more than two variants: the target against each other variant by name (none: informational).
    targets: dict[str, float] = field(default_factory=dict)

    def target_against(self, other: str, second: str) -> float | None:
        return self.targets.get(other, self.target if other == second else None)


@dataclass(frozen=True)
class Scenario:
    """A measurement: what the child runs, what it reports, and in how many fresh processes."""

    name: str
    child_args: Callable[[Variant], list[str]] | None  # None: ``sample`` makes each sample
    metrics: tuple[Metric, ...]
    processes: Callable[[argparse.Namespace], int]
    # Two or more: ratios of the first to each other; one: no ratio columns.
    variants: tuple[str, ...] = ("ours", "reference")
    sample: Callable[[Variant], dict] | None = None  # a sample made in this process (see init_under_ric)
    # The capability the measured function must have configured (see CAPABILITIES); skipped otherwise.
    needs: str | None = None


def warm_processes(a: argparse.Namespace) -> int:
    return max(1 if a.quick else 5, math.ceil(a.runs / 3))


# New scenarios go here; child.py runs them. Tables are grouped by `variants`.
SCENARIOS = [
    # Ours (every capability configured, lazy mode) against the article's hello world, the bare import of
    # FastAPI and Mangum from our layer (the floor of any FastAPI handler), and ours with the collector
    # running during init (INIT_GC=on: what the modules alone cost), interleaved.
    Scenario("cold_import", lambda v: ["import", v.module],
             (Metric("import_ms", "cold import (ms)", targets={"reference": 0.45, "floor": 1.05}),
              Metric("cpu_ms", "cold import, CPU time (ms)"), Metric("wall_ms", "cold process wall (ms)")),
             lambda a: a.runs, ("ours", "reference", "floor", "ours-gc-on")),
    Scenario("warm_get", lambda v: ["warm", v.handler, "GET /", str(WARMUP_CALLS), str(TIMED_CALLS), str(EVENTS_PY)],
             (Metric("us_per_call", "warm GET (µs)", 0.30),), warm_processes),
    # Init as Lambda reports it: Lambda's runtime interface client (awslambdaric) in a fresh process, from its
    # start to its first request for an event, through the Runtime API of cdk_app.local (make local's).
    Scenario("init_ric", None, (Metric("init_ms", "init under awslambdaric (ms)", 0.45),
                                Metric("first_ms", "first GET / after init, as the runtime API saw it (ms)")),
             lambda a: a.runs, ("ours", "reference")),
    # Ours only (the reference has no warmup path): both calls timed in the same process.
    Scenario("warmup_ping", lambda v: ["ping", v.handler, str(WARMUP_CALLS), str(PING_CALLS), str(TIMED_CALLS),
                                       str(EVENTS_PY)],
             (Metric("ping_us", "warmup ping, concurrency 1 (µs)", digits=2),
              Metric("get_us", "full GET / (µs)"),
              Metric("ping_over_get", "ratio ping / GET", 0.05, digits=3)),
             warm_processes, ("ours",)),
    Scenario("import_mode", lambda v: ["first", v.handler, str(EVENTS_PY)],
             (Metric("import_ms", "cold import (ms)"), Metric("first_get_ms", "first GET / after import (ms)", digits=2)),
             lambda a: a.runs, ("ours-eager", "ours-lazy")),
    # Background tasks against a moto server this process runs (an HTTP round trip on loopback, not AWS):
    # informational, the absolute numbers are moto's as much as ours.
    Scenario("post_task", lambda v: ["warm", v.handler, "POST /tasks", "20", str(TASK_CALLS), str(EVENTS_PY)],
             (Metric("us_per_call", "warm POST /tasks, moto server (µs)", digits=0),), warm_processes, ("ours-tasks",),
             needs="tasks"),
    # Identity: GET /me with the claims the gateway verified, and with the function verifying the token
    # itself (cached keys), each against the reference's GET /.
    Scenario("me_claims", lambda v: ["warm", v.handler, "GET /me, gateway claims" if v.name != "reference" else "GET /",
                                     str(WARMUP_CALLS), str(TIMED_CALLS), str(EVENTS_PY)],
             (Metric("us_per_call", "warm GET /me, gateway claims vs GET / (µs)"),), warm_processes,
             ("ours-auth", "reference"), needs="auth"),
    Scenario("me_verified", lambda v: ["warm", v.handler, "GET /me, verified token" if v.name != "reference"
                                       else "GET /", str(WARMUP_CALLS), str(TIMED_CALLS), str(EVENTS_PY)],
             (Metric("us_per_call", "warm GET /me, verified token vs GET / (µs)"),), warm_processes,
             ("ours-verify", "reference"), needs="verify"),
    Scenario("worker_batch", lambda v: ["batch", v.handler, "2", str(TASK_BATCHES), "10", str(EVENTS_PY)],
             (Metric("batch_ms", "worker, 10-message batch (ms)"), Metric("messages_per_s", "worker messages/s", digits=0)),
             warm_processes, ("ours-tasks",), needs="tasks"),
    # The cache: a real redis-server (TLS, password from a secret on the moto server) that run.py starts, or a
    # port that accepts and never answers (down). The source takes ITEM_SOURCE_DELAY_MS on a miss.
    Scenario("items_hit", lambda v: ["items", v.handler, "hit", "50", str(ITEM_HITS), str(EVENTS_PY)],
             (Metric("us_per_call", "warm GET /items/{key}, hit (µs)", digits=0),), warm_processes, ("ours-cache",),
             needs="cache"),
    Scenario("items_miss", lambda v: ["items", v.handler, "miss", "2", str(ITEM_MISSES), str(EVENTS_PY)],
             (Metric("ms_per_call", f"warm GET /items/{{key}}, miss: {ITEM_SOURCE_DELAY_MS} ms source (ms)"),),
             warm_processes, ("ours-cache",), needs="cache"),
    Scenario("items_down_closed", lambda v: ["items", v.handler, "down-closed", "0", str(ITEMS_DOWN), str(EVENTS_PY)],
             (Metric("ms_per_call", "cache hung, breaker closed (ms)"),), warm_processes, ("ours-cache-down",),
             needs="cache"),
    # The hostile-input guard (fastapi_lambda.guard): the same app behind a handler with it and one without, in
    # one process, alternating rounds (the fastest of each). A GET has no body (one lookup); a POST's JSON
    # body is parsed strictly before the app parses it again.
    Scenario("guard_get", lambda v: ["guard", v.handler, "GET /", str(GUARD_ROUNDS), str(GUARD_CALLS), str(EVENTS_PY)],
             (Metric("on_us", "warm GET / with the input guard (µs)"), Metric("off_us", "... without it (µs)"),
              Metric("on_over_off", "ratio guard on / off, GET /", digits=3),
              Metric("check_us", "the guard's work alone, GET / (µs)", digits=3)), warm_processes, ("ours",)),
    Scenario("guard_post", lambda v: ["guard", v.handler, "POST /orders", str(GUARD_ROUNDS), str(GUARD_CALLS),
                                      str(EVENTS_PY)],
             (Metric("on_us", "warm POST /orders (JSON body) with the input guard (µs)"),
              Metric("off_us", "... without it (µs)"), Metric("on_over_off", "ratio guard on / off, POST", digits=3),
              Metric("check_us", "the guard's check alone, POST body (µs)", digits=2),
              Metric("check_share", "ratio check / request without the guard, POST", digits=3)),
             warm_processes, ("consumer",)),
    Scenario("items_down_open", lambda v: ["items", v.handler, "down-open", "3", str(ITEM_MISSES), str(EVENTS_PY)],
             (Metric("ms_per_call", "cache hung, breaker open (ms)"),), warm_processes, ("ours-cache-down",),
             needs="cache"),
]


def find_interpreter(version: str) -> tuple[list[str], str]:
    """The target interpreter's real binary, and its full version string."""
    from cdk_app.bundling import find_python, missing_interpreter_message

    command = find_python(version)
    if command is None:
        sys.exit(missing_interpreter_message(version))
    # Run the real binary, not a shim or launcher: those add their own start-up to every
    # sample and need the caller's environment, which the Lambda-like one does not carry.
    done = subprocess.run([*command, "-c", "import sys; print(sys.executable); print(sys.version)"],
                          capture_output=True, text=True, check=True)
    executable, version = done.stdout.strip().split("\n", 1)
    return [executable], version


def synthesize(environment: str) -> Path:
    """The environment's cloud assembly, built for this machine's architecture as ``make local`` builds it
    (the CDK CLI with bundling), into bench/out/cdk.out.<environment>."""
    output = OUT / f"cdk.out.{environment}"
    command = ["npx", "cdk", "synth", "--quiet", "-c", f"env={environment}",
               "--app", f"{sys.executable} -m cdk_app.local.synth", "--output", str(output)]
    print(f"synthesizing {environment}: {' '.join(command)}", file=sys.stderr)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"cdk synth failed:\n{(done.stderr or done.stdout)[-3000:]}")
    return output


def api_function(assembly: Path, name: str) -> tuple[Any, dict[str, Any]]:
    """The function whose construct path is ``<stack>/<name>/...``, as cdk_app.local runs functions, and the
    environment variables its template sets (values or CloudFormation expressions)."""
    from sizes import function_parts

    from cdk_app.local.runtime import FunctionSpec
    from cdk_app.local.template import _stacks_in  # every stack of the assembly (read_stack wants one)

    for stack in _stacks_in(assembly):
        for logical_id, resource in stack.of_type("AWS::Lambda::Function").items():
            properties = resource.get("Properties", {})
            if stack.path_of(logical_id).split("/")[1:2] != [name] or "ZipFile" in properties.get("Code", {}):
                continue
            code, *layers = function_parts(stack, logical_id, OUT / "assets")
            if any(layer.path is None for layer in layers):
                sys.exit(f"{name}: a layer from outside the stack ({[p.name for p in layers if p.path is None]}) "
                         "is not in the assembly; the bench runs the stack's own layers only")
            logging_config = properties.get("LoggingConfig", {})
            variables = dict(properties.get("Environment", {}).get("Variables", {}))
            return FunctionSpec(
                logical_id=logical_id, label=name, name="fastapi-bench",
                arn="arn:aws:lambda:us-east-1:123456789012:function:fastapi-bench", handler=properties["Handler"],
                runtime=properties.get("Runtime", ""), code=code.path, layers=tuple(p.path for p in layers),
                environment={}, timeout_s=float(properties.get("Timeout", 3)),
                memory_mb=int(properties.get("MemorySize", 128)),
                architecture=(properties.get("Architectures") or ["x86_64"])[0],
                log_format=logging_config.get("LogFormat", "Text"),
                log_level=logging_config.get("ApplicationLogLevel")), variables
    sys.exit(f"no function under <stack>/{name} in {assembly} (--function names the construct under the stack)")


def build_ours(spec: Any, runtime: Path, capabilities: dict[str, str]) -> list[Variant]:
    """Our real bundle: the API function's code asset and layers from the assembly, as Lambda lays them out.

    Returns "ours" (lazy, the default, with every capability configured), the same bundle as
    "ours-eager" and "ours-lazy", and "floor" (``import fastapi, mangum`` from the same layers); the
    runtime's SDK comes last on their path.
    """
    layers = tuple(layer / "python" for layer in spec.layers)
    if any((layer / "boto3").exists() for layer in layers):
        sys.exit("our layer ships boto3: it must come from the runtime")
    module = spec.handler.rpartition(".")[0]
    ours = Variant("ours", (spec.code, *layers, runtime), module, f"{module}:{spec.handler.rpartition('.')[2]}",
                   capabilities)
    return [ours, *(replace(ours, name=f"ours-{mode}", env={**capabilities, "IMPORT_MODE": mode})
                    for mode in ("eager", "lazy")),
            replace(ours, name="ours-gc-on", env={**capabilities, "INIT_GC": "on"}),
            Variant("floor", ours.path[1:], "fastapi,mangum", "-")]


def build_consumer(target, ours: Variant) -> Variant:
    """The consumer example (``examples/consumer/src``: its package + the runtime package) on our layer and
    runtime SDK."""
    from cdk_app.bundling import build_locally

    root = OUT / "consumer"
    shutil.rmtree(root, ignore_errors=True)
    code = build_locally("code", root / "code", source=REPO / "examples" / "consumer" / "src", target=target)
    return Variant("consumer", (code, *ours.path[1:]), "orders.handler", "orders.handler:handler")


def start_identity_backend() -> tuple[dict[str, str], dict[str, str]]:
    """A signing key served as a JWKS on loopback and a token signed with it; the variables of the
    gateway-claims variant and of the verifying one."""
    import http.server
    import threading

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa
    from fastapi_lambda.constants import (
        AUTH_CLIENT_IDS_VARIABLE,
        AUTH_ISSUER_VARIABLE,
        AUTH_JWKS_URL_VARIABLE,
        AUTH_VERIFY_VARIABLE,
    )

    sys.path.insert(0, str(BENCH))
    from events import BENCH_CLIENT_ID, BENCH_ISSUER

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**public, "kid": "bench", "alg": "RS256", "use": "sig"}]}).encode()

    class Keys(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args):  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    now = int(time.time())
    token = jwt.encode({"sub": "bench-user", "iss": BENCH_ISSUER, "client_id": BENCH_CLIENT_ID, "token_use": "access",
                        "scope": "openid", "username": "bench-user", "iat": now, "exp": now + 86400},
                       key, algorithm="RS256", headers={"kid": "bench"})
    common = {AUTH_ISSUER_VARIABLE: BENCH_ISSUER, AUTH_CLIENT_IDS_VARIABLE: BENCH_CLIENT_ID}
    verify = {**common, AUTH_VERIFY_VARIABLE: "true", "BENCH_TOKEN": token,
              AUTH_JWKS_URL_VARIABLE: f"http://127.0.0.1:{server.server_address[1]}/jwks.json"}
    return {**common, AUTH_VERIFY_VARIABLE: "false"}, verify


def start_task_backend() -> dict[str, str]:
    """A moto server on loopback with a queue and a status table; the function variables that name them."""
    import boto3
    from fastapi_lambda.constants import TASK_QUEUE_URL_VARIABLE, TASK_TABLE_KEY, TASK_TABLE_VARIABLE
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    credentials = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                   "AWS_SECRET_ACCESS_KEY": "bench"}
    clients = {name: boto3.client(name, region_name="us-east-1", endpoint_url=credentials["AWS_ENDPOINT_URL"],
                                  aws_access_key_id="bench", aws_secret_access_key="bench")
               for name in ("sqs", "dynamodb")}
    queue_url = clients["sqs"].create_queue(QueueName="bench-tasks")["QueueUrl"]
    clients["dynamodb"].create_table(TableName="bench-tasks", BillingMode="PAY_PER_REQUEST",
                                     KeySchema=[{"AttributeName": TASK_TABLE_KEY, "KeyType": "HASH"}],
                                     AttributeDefinitions=[{"AttributeName": TASK_TABLE_KEY, "AttributeType": "S"}])
    return {**credentials, TASK_QUEUE_URL_VARIABLE: queue_url, TASK_TABLE_VARIABLE: "bench-tasks"}


def start_cache_backend(task_backend: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A redis-server with TLS and a password (in a secret on the moto server) and a port that never answers:
    the variables of the cache variants, live and down. Both stop when this process exits."""
    import atexit

    import boto3

    from tests.app.redis_server import REDIS_SERVER, SKIP_REASON, HungServer, RedisServer, make_certificates

    if REDIS_SERVER is None:
        sys.exit(SKIP_REASON)
    directory = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    certificates = make_certificates(directory)
    server = RedisServer(directory, certificates, password="bench-" + uuid.uuid4().hex).start()
    atexit.register(server.stop)
    secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=task_backend["AWS_ENDPOINT_URL"],
                           aws_access_key_id="bench", aws_secret_access_key="bench")
    secret_arn = secrets.create_secret(Name="bench-cache-token", SecretString=server.password)["ARN"]
    hung = HungServer()
    atexit.register(hung.close)
    from fastapi_lambda.constants import CACHE_HOST_VARIABLE, CACHE_PORT_VARIABLE, CACHE_SECRET_VARIABLE

    live = {**task_backend, CACHE_HOST_VARIABLE: "127.0.0.1", CACHE_PORT_VARIABLE: str(server.port),
            CACHE_SECRET_VARIABLE: secret_arn, "SSL_CERT_FILE": str(certificates[0]),
            "ITEMS_SOURCE_DELAY_MS": str(ITEM_SOURCE_DELAY_MS)}
    return live, {**live, CACHE_PORT_VARIABLE: str(hung.port)}


def pip_install_cached(name: str, requirements: Path, target, python: list[str] | None = None) -> Path:
    """pip-install `requirements` for the target into bench/out/NAME, cached on the
    requirements, Python version and machine; with `python`, compile .pyc with it.

    pip runs on the host's Python, so the platform flags select wheels for the target interpreter.
    """
    root, stamp = OUT / name, OUT / f"{name}.key"
    key = hashlib.sha256(requirements.read_bytes() + f"|{target.python_version}|{target.machine}".encode()
                         + (b"|compiled" if python else b"")).hexdigest()
    cached = root.is_dir() and stamp.is_file() and stamp.read_text() == key
    if not cached:
        shutil.rmtree(root, ignore_errors=True)
        stamp.unlink(missing_ok=True)
        from cdk_app.bundling import pip_install_command  # the layer's flags; both files pin every package

        done = subprocess.run(pip_install_command(requirements, root, target), capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"pip could not install the {name}:\n{(done.stderr or done.stdout)[-3000:]}")
        if python:
            from cdk_app.bundling import compile_bytecode

            compile_bytecode(root, python=tuple(python), runtime_path="/var/runtime")
            if not (root / "boto3" / "__pycache__").is_dir():
                sys.exit(f"the {name} was not compiled to .pyc")
        stamp.write_text(key)
    return root


def build_runtime(target, python: list[str]) -> Path:
    """The SDK of Lambda's /var/runtime: boto3 and its closure, precompiled like the runtime ships it."""
    return pip_install_cached("runtime", RUNTIME_REQUIREMENTS, target, python)


def build_reference(target) -> Variant:
    """The article's packaging: everything pip-installed next to the app, no .pyc at all."""
    root = pip_install_cached("reference", REFERENCE_REQUIREMENTS, target)
    shutil.copy2(BENCH / "reference_app.py", root / "reference_app.py")
    assert_no_bytecode(root)
    return Variant("reference", (root,), "reference_app", "reference_app:handler")


def assert_no_bytecode(root: Path) -> None:
    """The reference must compile everything at import, as it does on Lambda."""
    compiled = next(root.rglob("__pycache__"), None) or next(root.rglob("*.pyc"), None)
    if compiled:
        sys.exit(f"the reference bundle contains bytecode ({compiled}); delete {root} and rerun")


def lambda_env(variant: Variant, python_version: str) -> dict[str, str]:
    """A minimal environment like Lambda's; nothing from the caller's leaks in."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": ":UTC",
        "PYTHONPATH": os.pathsep.join(str(p) for p in variant.path),
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task and /opt are read-only on Lambda
        "LAMBDA_TASK_ROOT": str(variant.path[0]), "AWS_EXECUTION_ENV": f"AWS_Lambda_python{python_version}",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "fastapi-bench", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "APP_ENVIRONMENT": "bench", **variant.env,
    }


def run_child(python: list[str], variant: Variant, args: list[str], cwd: str, python_version: str) -> dict:
    """One fresh interpreter (-s: no user site-packages); returns its JSON sample plus wall time."""
    start = time.perf_counter()
    done = subprocess.run([*python, "-s", str(CHILD), *args], env=lambda_env(variant, python_version),
                          cwd=cwd, capture_output=True, text=True)
    wall_ms = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        sys.exit(f"{variant.name}: child {args[:2]} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_ms": wall_ms}


def measure(scenario: Scenario, variants: list[Variant], python: list[str], args: argparse.Namespace) -> dict:
    variants = sorted((v for v in variants if v.name in scenario.variants), key=lambda v: scenario.variants.index(v.name))
    with tempfile.TemporaryDirectory(prefix="bench-cwd-") as cwd:

        def sample(variant: Variant) -> dict:
            if scenario.sample is not None:
                return scenario.sample(variant)
            return run_child(python, variant, scenario.child_args(variant), cwd, args.python_version)

        for variant in variants:  # one discarded round: every bundle starts from a warm page cache
            sample(variant)
        samples: dict[str, list[dict]] = {v.name: [] for v in variants}
        for _ in range(scenario.processes(args)):
            for variant in variants:  # interleaved, so drift (CPU clocks, neighbours) hits all alike
                samples[variant.name].append(sample(variant))
    return samples


def summarize(scenario: Scenario, samples: dict[str, list[dict]]) -> list[dict]:
    """One row per metric and comparison: the first variant against each other one (their ratio of medians
    is judged), or a single variant's own median."""
    rows = []
    names = scenario.variants
    for metric in scenario.metrics:
        stats = {}
        for name, runs in samples.items():
            values = [run[metric.key] for run in runs]
            stats[name] = {"median": statistics.median(values), "min": min(values), "samples": values}
        if len(names) == 1:  # judged on the metric's own median (itself a ratio)
            judged = stats[names[0]]["median"]
            rows.append({"scenario": scenario.name, "metric": metric.key, "label": metric.label, "variants": [names[0]],
                         names[0]: stats[names[0]], "ratio_median": None, "ratio_min": None,
                         "target_ratio_max": metric.target,
                         "pass": None if metric.target is None else judged <= metric.target})
            continue
        for other in names[1:]:
            first, second = stats[names[0]], stats[other]
            target = metric.target_against(other, names[1])
            ratio_median, ratio_min = first["median"] / second["median"], first["min"] / second["min"]
            rows.append({"scenario": scenario.name, "metric": metric.key, "label": metric.label,
                         "variants": [names[0], other], names[0]: first, other: second,
                         "ratio_median": ratio_median, "ratio_min": ratio_min, "target_ratio_max": target,
                         "pass": None if target is None else ratio_median <= target})
    return rows


def print_tables(rows: list[dict]) -> None:
    """One table per set of compared variants, in scenario order."""
    for names in dict.fromkeys(tuple(r["variants"]) for r in rows):
        print("\n" + (f"{names[0]} vs {names[1]}: ratio = {names[0]} / {names[1]}, target on the ratio of medians"
                      if len(names) == 2 else f"{names[0]} only: target on the median"))
        print_table([r for r in rows if tuple(r["variants"]) == names], names)


def print_table(rows: list[dict], names: tuple[str, ...]) -> None:
    paired = len(names) == 2
    digits = {(s.name, m.key): m.digits for s in SCENARIOS for m in s.metrics}
    header = ["metric", *(f"{n} {s}" for n in names for s in ("median", "min")),
              *(["ratio (median)", "ratio (min)"] if paired else []), "target"]
    lines = [header]
    for r in rows:
        target = "-" if r["target_ratio_max"] is None else \
            f"<= {r['target_ratio_max']:.2f} {'PASS' if r['pass'] else 'MISS'}"
        cells = [f"{r[n][s]:.{digits[r['scenario'], r['metric']]}f}" for n in names for s in ("median", "min")]
        ratios = [f"{r['ratio_median']:.3f}", f"{r['ratio_min']:.3f}"] if paired else []
        lines.append([r["label"], *cells, *ratios, target])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print(" | ".join(cell.ljust(w) if j == 0 else cell.rjust(w) for j, (cell, w) in enumerate(zip(line, widths, strict=True))))
        if i == 0:
            print("-+-".join("-" * w for w in widths))


def git_commit() -> str | None:
    """HEAD's commit; None outside a repository or before the first commit."""
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def ric_sampler(specs: dict[str, Any], python_version: str) -> Callable[[Variant], dict]:
    """Each sample: a new execution environment of the variant's function under awslambdaric (cdk_app.local's
    runtime and Runtime API), its init as Lambda reports it, then one ``GET /`` (which must answer 200)."""
    from cdk_app.local.runtime import FunctionPool, runtime_python

    sys.path.insert(0, str(BENCH))
    from events import http_api_event

    python = runtime_python(python_version, log=lambda line: print(line, file=sys.stderr))
    work = OUT / "ric"
    work.mkdir(parents=True, exist_ok=True)

    def sample(variant: Variant) -> dict:
        lines: list[str] = []
        pool = FunctionPool(specs[variant.name], python=python, services={}, region="us-east-1", work=work,
                            max_instances=1, log=lines.append)
        try:
            result = pool.invoke(json.dumps(http_api_event("GET", "/")).encode())
        finally:
            pool.stop()
        answer = result.json() if result.ok else None
        if result.init_ms is None or not isinstance(answer, dict) or answer.get("statusCode") != 200:
            sys.exit(f"{variant.name} under awslambdaric answered {result.payload[:500]!r}:\n" + "\n".join(lines[-40:]))
        return {"init_ms": result.init_ms, "first_ms": result.duration_ms}

    return sample


def profile_imports(python: list[str], ours: Variant, floor: Variant, processes: int, python_version: str) -> dict:
    """``-X importtime`` of the cold import of ours and of the floor, in fresh processes, aggregated."""
    import importtime

    samples: dict[str, list[dict[str, int]]] = {ours.name: [], floor.name: []}
    with tempfile.TemporaryDirectory(prefix="bench-cwd-") as cwd:
        for _ in range(processes):
            for variant in (ours, floor):
                done = subprocess.run([*python, "-s", "-X", "importtime", str(CHILD), "import", variant.module],
                                      env=lambda_env(variant, python_version), cwd=cwd, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"{variant.name}: -X importtime failed:\n{done.stderr[-3000:]}")
                samples[variant.name].append(importtime.parse(done.stderr))
    return importtime.summary(importtime.aggregate(samples[ours.name]), importtime.aggregate(samples[floor.name]))


#: What the bench configures a local stand-in for: the runtime's capabilities the measured function has
#: (``fastapi_lambda.requirements.capabilities_of``, as its layer was cut), and "auth", the gateway's claims
#: (``AUTH_ISSUER``: identity needs no package, so it is no capability of the table).
CAPABILITIES = ("tasks", "cache", "auth", "verify", "parameters")


def configured_capabilities(variables: dict[str, Any]) -> frozenset[str]:
    from fastapi_lambda.constants import AUTH_ISSUER_VARIABLE
    from fastapi_lambda.requirements import capabilities_of

    used = capabilities_of(variables, serves_http=True)
    found = {name for name in ("tasks", "cache", "parameters") if name in used}
    if "auth-verify" in used:
        found.add("verify")
    if AUTH_ISSUER_VARIABLE in variables:
        found.add("auth")
    return frozenset(found)


def capabilities_env(variables: dict[str, Any], capabilities: frozenset[str], backends: dict[str, dict[str, str]]
                     ) -> dict[str, str]:
    """The function's configuration as the template sets it: its plain values as they are (IMPORT_MODE,
    TRACING_MODE, Powertools' names ...), and each configured capability's variables from its local stand-in
    (``backends``: tasks, claims, verify, cache) instead of the template's references to AWS resources."""
    from fastapi_lambda.constants import SECRETS_VARIABLE

    env = {name: value for name, value in variables.items() if isinstance(value, str)}
    env.pop("APP_ENVIRONMENT", None)  # lambda_env's "bench"
    if "parameters" in capabilities:
        env[SECRETS_VARIABLE] = json.dumps({"partner_api_key": "fastapi-bench-partner"})
    for capability, backend in (("tasks", "tasks"), ("parameters", "tasks"), ("auth", "claims"),
                                ("verify", "verify"), ("cache", "cache")):
        if capability in capabilities:
            env.update(backends[backend])
    return env


#: Parts of the run besides the scenarios, which --only may also name.
EXTRAS = ("sizes", "imports")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=MIN_RUNS, help=f"cold processes per bundle (min {MIN_RUNS})")
    parser.add_argument("--quick", action="store_true", help="allow fewer runs: a smoke test, not a result")
    parser.add_argument("--python-version", default="3.13")
    parser.add_argument("--out", type=Path, default=OUT / "results.json")
    parser.add_argument("--only", default="", help="comma-separated scenario names to run, and/or "
                        f"{' or '.join(EXTRAS)} (default: all)")
    parser.add_argument("--assembly", type=Path, help="a cloud assembly built for this machine (make local's "
                        ".local/cdk.out.dev); default: synthesize --env into bench/out")
    parser.add_argument("--env", default="dev", help="the environment to synthesize (default dev)")
    parser.add_argument("--function", default="Api", help="the construct under the stack whose function is "
                        "measured (default Api)")
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    if unknown := only - {s.name for s in SCENARIOS} - set(EXTRAS):
        parser.error(f"--only: no scenario named {', '.join(sorted(unknown))}")
    scenarios = [s for s in SCENARIOS if not only or s.name in only]
    if args.runs < (1 if args.quick else MIN_RUNS):
        parser.error(f"--runs must be at least {MIN_RUNS} (or use --quick for a smoke test)")

    from cdk_app.bundling import BundlingTarget

    machine = platform.machine().lower()
    architecture = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[machine]
    target = BundlingTarget(python_version=args.python_version, architecture=architecture)
    python, version = find_interpreter(args.python_version)
    started = time.perf_counter()
    assembly = (args.assembly or synthesize(args.env)).resolve()
    api_spec, variables = api_function(assembly, args.function)
    configured = configured_capabilities(variables)
    skipped = [s for s in scenarios if s.needs is not None and s.needs not in configured]
    scenarios = [s for s in scenarios if s not in skipped]
    reference = build_reference(target)
    claims_env, verify_env = start_identity_backend()
    backends = {"claims": claims_env, "verify": verify_env}
    if configured & {"tasks", "parameters", "cache"}:
        backends["tasks"] = start_task_backend()  # the moto server: queue, table, secrets
    if "cache" in configured:
        backends["cache"], cache_down = start_cache_backend(backends["tasks"])
    capabilities = capabilities_env(variables, configured, backends)
    ours, *more = build_ours(api_spec, build_runtime(target, python), capabilities)
    variants = [ours, *more, reference, build_consumer(target, ours), replace(ours, name="ours-tasks"),
                replace(ours, name="ours-auth", env={**ours.env, **claims_env}),
                replace(ours, name="ours-verify", env={**ours.env, **verify_env})]
    if "cache" in configured:
        variants += [replace(ours, name="ours-cache"),
                     replace(ours, name="ours-cache-down", env={**ours.env, **cache_down})]
    ric_specs = {"ours": replace(api_spec, environment={"APP_ENVIRONMENT": "bench", **capabilities}),
                 "reference": replace(api_spec, logical_id="Reference", label="reference", name="fastapi-reference",
                                      handler="reference_app.handler", code=reference.path[0], layers=(),
                                      environment={"APP_ENVIRONMENT": "bench"})}
    scenarios = [replace(s, sample=ric_sampler(ric_specs, args.python_version)) if s.name == "init_ric" else s
                 for s in scenarios]
    print(f"built bundles in {time.perf_counter() - started:.1f} s ({assembly})", file=sys.stderr)

    results, rows = {}, []
    for scenario in scenarios:
        print(f"running {scenario.name} ({scenario.processes(args)} processes per bundle) ...", file=sys.stderr)
        results[scenario.name] = measure(scenario, variants, python, args)
        rows += summarize(scenario, results[scenario.name])
        assert_no_bytecode(reference.path[0])  # still none: every sample compiled from source
    imports = size_rows = None
    size_lines: list[str] = []
    if not only or "imports" in only:
        print("profiling imports (-X importtime) ...", file=sys.stderr)
        imports = profile_imports(python, ours, next(v for v in variants if v.name == "floor"), warm_processes(args),
                                  args.python_version)
    if not only or "sizes" in only:
        import sizes

        print("sizing the functions ...", file=sys.stderr)
        size_rows, size_lines = sizes.report(sizes.function_sizes(assembly, OUT / "assets"), reference.path[0],
                                             args.function)

    print(f"\ninterpreter: Python {version} ({python[0]})")
    print(f"machine: {platform.machine()} (bundle architecture {target.architecture}), {platform.platform()}")
    print(f"bundle: the {args.function} function of {assembly}, configured as its template configures it "
          f"(capabilities: {', '.join(sorted(configured)) or 'none'}; lazy mode unless named)")
    if skipped:
        print("skipped, the function has not the capability they need: "
              + ", ".join(f"{s.name} ({s.needs})" for s in skipped))
    per_scenario = ", ".join(f"{s.name} {s.processes(args)}" for s in scenarios)
    print(f"runs: --runs {args.runs}; fresh processes per bundle: {per_scenario}; warm: {TIMED_CALLS} timed calls "
          f"({PING_CALLS} for the warmup ping) after {WARMUP_CALLS} warm-up calls"
          f"{' (QUICK: smoke test only)' if args.quick else ''}")
    print_tables(rows)
    if size_lines:
        print("\nwhat each function ships (" + str(assembly) + "):")
        print("\n".join(size_lines))
    if imports is not None:
        import importtime

        print()
        print("\n".join(importtime.lines(imports, warm_processes(args))))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "interpreter": {"version": version, "executable": python[0]},
        "platform": {"machine": platform.machine(), "architecture": target.architecture,
                     "system": platform.platform(), "cpus": os.cpu_count()},
        "config": {"runs": args.runs, "quick": args.quick, "assembly": str(assembly), "function": args.function,
                   "capabilities": sorted(configured), "skipped": [s.name for s in skipped],
                   "processes_per_bundle": {s.name: s.processes(args) for s in scenarios},
                   "warmup_calls": WARMUP_CALLS, "timed_calls": TIMED_CALLS, "ping_calls": PING_CALLS,
                   "discarded_priming_rounds": 1},
        "variants": {v.name: {"pythonpath": [str(p) for p in v.path], "handler": v.handler, "env": v.env}
                     for v in variants},
        "results": rows,
        "sizes": size_rows,
        "imports": imports,
        "raw": results,
    }, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
