#!/usr/bin/env python3
"""CDK entry point: one stack per environment in cdk.json (``-c env=<name>`` for one)."""

from aws_cdk import App

from cdk_app.errors import one_line_errors
from cdk_app.stack import build_stacks

app = App()
# Invalid settings, a lock that cannot be bundled, a refused resource: the message names the setting and the fix;
# a traceback would only push it off screen. Exit code 1.
with one_line_errors():
    build_stacks(app)
    app.synth()
