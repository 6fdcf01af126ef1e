#!/usr/bin/env python3
"""CDK entry point: one stack per environment in cdk.json (``-c env=<name>`` for one)."""

import sys

from aws_cdk import App

from cdk_app.config import ConfigError
from cdk_app.stack import build_stacks

app = App()
try:
    build_stacks(app)
except ConfigError as error:
    # The lines name the key and the fix; a traceback would only push them off screen. Exit code 1.
    sys.exit(str(error))
app.synth()
