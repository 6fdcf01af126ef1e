"""Cold-start and warm-request benchmark: our Lambda bundle vs the article's reference.

Run from the repository root:  .venv/bin/python bench/run.py [--runs N] [--quick]
                                [--python-version 3.13] [--out bench/out/results.json]
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
    # two, of the metric itself when it runs one. None: informational.
    target: float | None = None
    digits: int = 1  # decimals in the table


@dataclass(frozen=True)
class Scenario:
    """A measurement: what the child runs, what it reports, and in how many fresh processes."""

    name: str
    child_args: Callable[[Variant], list[str]]
    metrics: tuple[Metric, ...]
    processes: Callable[[argparse.Namespace], int]
    variants: tuple[str, ...] = ("ours", "reference")  # two: ratio first/second; one: no ratio columns


def warm_processes(a: argparse.Namespace) -> int:
    return max(1 if a.quick else 5, math.ceil(a.runs / 3))


# New scenarios go here; child.py runs them. Tables are grouped by `variants`.
SCENARIOS = [
    Scenario("cold_import", lambda v: ["import", v.module],
             (Metric("import_ms", "cold import (ms)", 0.50), Metric("wall_ms", "cold process wall (ms)")),
             lambda a: a.runs),
    Scenario("warm_get", lambda v: ["warm", v.handler, "GET /", str(WARMUP_CALLS), str(TIMED_CALLS), str(EVENTS_PY)],
             (Metric("us_per_call", "warm GET (µs)", 0.35),), warm_processes),
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
             (Metric("us_per_call", "warm POST /tasks, moto server (µs)", digits=0),), warm_processes, ("ours-tasks",)),
    # Identity: GET /me with the claims the gateway verified, and with the function verifying the token
    # itself (cached keys), each against the reference's GET /.
    Scenario("me_claims", lambda v: ["warm", v.handler, "GET /me, gateway claims" if v.name != "reference" else "GET /",
                                     str(WARMUP_CALLS), str(TIMED_CALLS), str(EVENTS_PY)],
             (Metric("us_per_call", "warm GET /me, gateway claims vs GET / (µs)"),), warm_processes,
             ("ours-auth", "reference")),
    Scenario("me_verified", lambda v: ["warm", v.handler, "GET /me, verified token" if v.name != "reference"
                                       else "GET /", str(WARMUP_CALLS), str(TIMED_CALLS), str(EVENTS_PY)],
             (Metric("us_per_call", "warm GET /me, verified token vs GET / (µs)"),), warm_processes,
             ("ours-verify", "reference")),
    Scenario("worker_batch", lambda v: ["batch", v.handler, "2", str(TASK_BATCHES), "10", str(EVENTS_PY)],
             (Metric("batch_ms", "worker, 10-message batch (ms)"), Metric("messages_per_s", "worker messages/s", digits=0)),
             warm_processes, ("ours-tasks",)),
    # The cache: a real redis-server (TLS, password from a secret on the moto server) that run.py starts, or a
    # port that accepts and never answers (down). The source takes ITEM_SOURCE_DELAY_MS on a miss.
    Scenario("cache_cold_import", lambda v: ["import", v.module],
             (Metric("import_ms", "cold import, cache configured (ms)", 0.50),), lambda a: a.runs,
             ("ours-cache", "reference")),
    Scenario("items_hit", lambda v: ["items", v.handler, "hit", "50", str(ITEM_HITS), str(EVENTS_PY)],
             (Metric("us_per_call", "warm GET /items/{key}, hit (µs)", digits=0),), warm_processes, ("ours-cache",)),
    Scenario("items_miss", lambda v: ["items", v.handler, "miss", "2", str(ITEM_MISSES), str(EVENTS_PY)],
             (Metric("ms_per_call", f"warm GET /items/{{key}}, miss: {ITEM_SOURCE_DELAY_MS} ms source (ms)"),),
             warm_processes, ("ours-cache",)),
    Scenario("items_down_closed", lambda v: ["items", v.handler, "down-closed", "0", str(ITEMS_DOWN), str(EVENTS_PY)],
             (Metric("ms_per_call", "cache hung, breaker closed (ms)"),), warm_processes, ("ours-cache-down",)),
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
             (Metric("ms_per_call", "cache hung, breaker open (ms)"),), warm_processes, ("ours-cache-down",)),
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


def build_ours(target, runtime: Path) -> list[Variant]:
    """Our real bundle, rebuilt every run so it always reflects the working tree.

    Returns "ours" (IMPORT_MODE unset: lazy, the default) and the same bundle as
    "ours-eager" and "ours-lazy"; the runtime's SDK comes last on their path.
    """
    from cdk_app.bundling import build_locally

    root = OUT / "ours"
    shutil.rmtree(root, ignore_errors=True)
    code = build_locally("code", root / "code", target=target)
    layer = build_locally("layer", root / "layer", target=target)
    if (layer / "python" / "boto3").exists():
        sys.exit("our layer ships boto3: it must come from the runtime")
    ours = Variant("ours", (code, layer / "python", runtime), "service.handler", "service.handler:handler")
    return [ours, *(replace(ours, name=f"ours-{mode}", env={"IMPORT_MODE": mode}) for mode in ("eager", "lazy"))]


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
    variants = [v for v in variants if v.name in scenario.variants]
    with tempfile.TemporaryDirectory(prefix="bench-cwd-") as cwd:
        for variant in variants:  # one discarded round: every bundle starts from a warm page cache
            run_child(python, variant, scenario.child_args(variant), cwd, args.python_version)
        samples: dict[str, list[dict]] = {v.name: [] for v in variants}
        for _ in range(scenario.processes(args)):
            for variant in variants:  # interleaved, so drift (CPU clocks, neighbours) hits both alike
                samples[variant.name].append(
                    run_child(python, variant, scenario.child_args(variant), cwd, args.python_version))
    return samples


def summarize(scenario: Scenario, samples: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for metric in scenario.metrics:
        stats = {}
        for name, runs in samples.items():
            values = [run[metric.key] for run in runs]
            stats[name] = {"median": statistics.median(values), "min": min(values), "samples": values}
        names = scenario.variants
        if len(names) == 2:  # judged on the ratio first/second of medians
            first, second = stats[names[0]], stats[names[1]]
            ratio_median, ratio_min = first["median"] / second["median"], first["min"] / second["min"]
            judged = ratio_median
        else:  # judged on the metric's own median (itself a ratio)
            ratio_median = ratio_min = None
            judged = stats[names[0]]["median"]
        rows.append({"scenario": scenario.name, "metric": metric.key, "label": metric.label, "variants": list(names),
                     **stats, "ratio_median": ratio_median, "ratio_min": ratio_min,
                     "target_ratio_max": metric.target,
                     "pass": None if metric.target is None else judged <= metric.target})
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=MIN_RUNS, help=f"cold processes per bundle (min {MIN_RUNS})")
    parser.add_argument("--quick", action="store_true", help="allow fewer runs: a smoke test, not a result")
    parser.add_argument("--python-version", default="3.13")
    parser.add_argument("--out", type=Path, default=OUT / "results.json")
    parser.add_argument("--only", default="", help="comma-separated scenario names to run (default: all)")
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    if unknown := only - {s.name for s in SCENARIOS}:
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
    reference = build_reference(target)
    variants = [*build_ours(target, build_runtime(target, python)), reference]  # the interleaving order
    variants.append(build_consumer(target, variants[0]))
    claims_env, verify_env = start_identity_backend()
    task_backend = start_task_backend()
    variants.append(replace(variants[0], name="ours-tasks", env={**task_backend, **claims_env}))
    variants += [replace(variants[0], name="ours-auth", env=claims_env),
                 replace(variants[0], name="ours-verify", env=verify_env)]
    cache_live, cache_down = start_cache_backend(task_backend)
    variants += [replace(variants[0], name="ours-cache", env=cache_live),
                 replace(variants[0], name="ours-cache-down", env=cache_down)]
    print(f"built bundles in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    results, rows = {}, []
    for scenario in scenarios:
        print(f"running {scenario.name} ({scenario.processes(args)} processes per bundle) ...", file=sys.stderr)
        results[scenario.name] = measure(scenario, variants, python, args)
        rows += summarize(scenario, results[scenario.name])
        assert_no_bytecode(reference.path[0])  # still none: every sample compiled from source

    print(f"\ninterpreter: Python {version} ({python[0]})")
    print(f"machine: {platform.machine()} (bundle architecture {target.architecture}), {platform.platform()}")
    per_scenario = ", ".join(f"{s.name} {s.processes(args)}" for s in scenarios)
    print(f"runs: --runs {args.runs}; fresh processes per bundle: {per_scenario}; warm: {TIMED_CALLS} timed calls "
          f"({PING_CALLS} for the warmup ping) after {WARMUP_CALLS} warm-up calls"
          f"{' (QUICK: smoke test only)' if args.quick else ''}")
    print_tables(rows)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "interpreter": {"version": version, "executable": python[0]},
        "platform": {"machine": platform.machine(), "architecture": target.architecture,
                     "system": platform.platform(), "cpus": os.cpu_count()},
        "config": {"runs": args.runs, "quick": args.quick,
                   "processes_per_bundle": {s.name: s.processes(args) for s in scenarios},
                   "warmup_calls": WARMUP_CALLS, "timed_calls": TIMED_CALLS, "ping_calls": PING_CALLS,
                   "discarded_priming_rounds": 1},
        "variants": {v.name: {"pythonpath": [str(p) for p in v.path], "handler": v.handler, "env": v.env}
                     for v in variants},
        "results": rows,
        "raw": results,
    }, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
