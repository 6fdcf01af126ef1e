"""``python -m cdk_app.local <cdk.out> [stack]``: run a synthesized stack locally, in the foreground.

Prints ``local: ready http://127.0.0.1:<port> ...`` once everything is up, then the functions'
logs and one line per request; Ctrl+C (or SIGTERM) stops everything it started.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from cdk_app.local.runtime import DEFAULT_MAX_INSTANCES
from cdk_app.local.stack import LocalStack, Options
from cdk_app.local.template import LocalError, read_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdk_app.local", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("assembly", help="the cloud assembly folder `cdk synth` wrote (cdk.out)")
    parser.add_argument("stack", nargs="?", help="the stack to run (default: the only one)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_PORT") or 3000),
                        help="the first API's port (more APIs: the next ports; 0: any free one); default LOCAL_PORT "
                             "or 3000")
    parser.add_argument("--max-instances", type=int, default=DEFAULT_MAX_INSTANCES,
                        help=f"execution environments per function at most (default {DEFAULT_MAX_INSTANCES})")
    parser.add_argument("--sqs-retry-seconds", type=float, default=None,
                        help="failed SQS messages return after this many seconds instead of the queue's visibility "
                             "timeout (quicker retries and dead-lettering; AWS waits the full timeout)")
    parser.add_argument("--schedules-now", action="store_true",
                        help="fire every schedule (the warmup rule) once at start, then on its rate")
    args = parser.parse_args(argv)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # while starting, SIGTERM stops like Ctrl+C (start cleans up)
    try:
        stack = read_stack(args.assembly, args.stack)
        local = LocalStack(stack, Options(port=args.port, max_instances=args.max_instances,
                                          sqs_retry_seconds=args.sqs_retry_seconds, schedules_now=args.schedules_now))
        local.start()
    except (LocalError, OSError) as error:  # OSError: the port is taken, typically
        print(f"local: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("local: stopped while starting", file=sys.stderr)
        return 130
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    try:
        print(f"local: ready {local.url.rstrip('/')} in {local.ready_s:.1f} s ({local.summary()})", flush=True)
        stopping.wait()
    finally:
        print("local: stopping", flush=True)
        local.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
