"""Helpers for testing a CDK app built with these constructs: fast apps and stable snapshots.

- :func:`app_for_tests` / :func:`skip_bundling`: an app that does not bundle (CDK's own switch, for any
  app and any asset: the templates keep each asset's source hash, so they equal a bundled synth's
  except for the hashes) and, by default, without CDK's built-in CloudFormation validation (~10 s
  per synth).
- :func:`normalized_template`: a stack's template with asset hashes and ``CurrentVersion<hash>``
  logical ids masked, so a snapshot changes only when the infrastructure does. With syrupy::

      from syrupy.extensions.json import JSONSnapshotExtension
      from cdk_app.testing import normalized_template, app_for_tests

      def test_orders_stack(snapshot):
          stack = OrdersStack(app_for_tests(), "orders")
          assert normalized_template(stack) == snapshot(extension_class=JSONSnapshotExtension)

Nothing here starts a synth of its own or reads ``cdk.json``: pass the context your app needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Stack
from aws_cdk.assertions import Template

#: CDK's context key: the stacks whose assets are bundled (``["**"]`` by default); ``[]`` bundles none.
BUNDLING_STACKS = "aws:cdk:bundling-stacks"
#: What the masks replace: 64-hex asset hashes and the version logical id's hash suffix.
ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
VERSION_ID = re.compile(r"(CurrentVersion)[0-9A-F]{8}[0-9a-f]{32}")
ASSET_HASH_MASK = "<asset-hash>"
VERSION_ID_MASK = r"\1<hash>"



def skip_bundling(app: App) -> App:
    """Build no asset in ``app`` (any app, not only :func:`cdk_app.stack.build_stacks`'s): call it before
    adding stacks. Templates are fit for assertions and snapshots, not for deploying.

    :raises ValueError: when ``app`` already has stacks (CDK fixes the context once a child exists).
    """
    if app.node.children:
        raise ValueError("skip_bundling(app) must be called before any stack is added to the app: CDK reads "
                         f"{BUNDLING_STACKS} when an asset is created. Fix: call it right after App(...), or "
                         f"pass context={{{BUNDLING_STACKS!r}: []}} to App.")
    app.node.set_context(BUNDLING_STACKS, [])
    return app


def app_for_tests(context: Mapping[str, Any] | None = None, *, bundling: bool = False, validation: bool = False,
             outdir: str | None = None) -> App:
    """An :class:`aws_cdk.App` for tests.

    :param context: the context your app reads (the CLI would pass ``cdk.json``'s; ``App()`` does not read it).
    :param bundling: build assets. @default False (see :func:`skip_bundling`)
    :param validation: CDK's built-in CloudFormation validation. @default False (one validated synth in CI is
        enough; it costs ~10 s and ~370 MB per synth)
    :param outdir: the cloud assembly folder. @default a temporary folder
    """
    context = dict(context or {})
    if not bundling:
        context[BUNDLING_STACKS] = []
    return App(context=context, builtin_cloud_formation_validation=validation, outdir=outdir)


def normalize(template: Mapping[str, Any]) -> dict[str, Any]:
    """``template`` (a CloudFormation template as a dict) with asset hashes and version ids masked."""
    text = json.dumps(template, sort_keys=True)
    text = ASSET_HASH.sub(ASSET_HASH_MASK, text)
    text = VERSION_ID.sub(VERSION_ID_MASK, text)
    normalized: dict[str, Any] = json.loads(text)
    return normalized


def normalized_template(stack_or_template: Stack | Template) -> dict[str, Any]:
    """The template of a stack (or of an assertions ``Template``), masked by :func:`normalize`, for a snapshot."""
    template = stack_or_template if isinstance(stack_or_template, Template) else Template.from_stack(stack_or_template)
    return normalize(template.to_json())
