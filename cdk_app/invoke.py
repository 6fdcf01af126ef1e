"""``python -m cdk_app.invoke <cdk.out> <event.json> [--function ...]``: see :mod:`cdk_app.local.invoke`."""

import sys

from cdk_app.local.invoke import main

if __name__ == "__main__":
    sys.exit(main())
