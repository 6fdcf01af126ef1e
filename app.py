#!/usr/bin/env python3
"""CDK entry point: one stack per environment in cdk.json (``-c env=<name>`` for one)."""

import sys

from aws_cdk import App

from cdk_app.settings import ConfigError
from cdk_app.stack import build_stacks

app = App()
try:
    build_stacks(app)
    app.synth()
except ConfigError as error:
    # The lines name the key and the fix; a traceback would only push them off screen. Exit code 1.
    sys.exit(str(error))
except RuntimeError as error:
    if "ValidationFailed" not in str(error):
        raise
    # cdk-nag or the deploy preflight refused a resource: CDK has printed each finding (rule, construct,
    # value, fix) above; the Python traceback of the jsii call would add nothing.
    sys.exit(str(error).splitlines()[0].removeprefix("ValidationFailed: "))
