#!/usr/bin/env python3
"""CDK entry point: one stack per environment in cdk.json (``-c env=<name>`` for one)."""

from aws_cdk import App

from cdk_app.stack import build_stacks

app = App()
build_stacks(app)
app.synth()
