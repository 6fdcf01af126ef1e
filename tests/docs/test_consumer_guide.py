"""docs/consumer-guide.md's app, written only from the guide, synthesizes (bundling skipped) and passes the
rule packs; its alarms all have an action."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tests.docs.markdown import REPO, blocks

GUIDE = REPO / "docs" / "consumer-guide.md"


def test_the_guides_app_synthesizes(tmp_path):
    (app,) = blocks(GUIDE, "consumer-app")
    folder = tmp_path / "orders-app"
    shutil.copytree(REPO / "examples" / "consumer" / "src", folder / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "app.py").write_text(app)
    outdir = tmp_path / "cdk.out"
    # As the CLI runs it (context and output folder in the environment), without bundling.
    env = {**os.environ, "PYTHONPATH": str(REPO), "CDK_OUTDIR": str(outdir),
           "CDK_CONTEXT_JSON": json.dumps({"aws:cdk:bundling-stacks": []})}
    done = subprocess.run([sys.executable, "app.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr[-3000:]
    resources = json.loads((outdir / "orders.template.json").read_text())["Resources"].values()
    alarms = [r for r in resources if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert {r["Type"] for r in resources} >= {"AWS::Lambda::Function", "AWS::ApiGatewayV2::Api", "AWS::SNS::Topic"}
    assert alarms and all(alarm["Properties"].get("AlarmActions") for alarm in alarms)
