"""Snapshots of each environment's normalized template.

Asset hashes and the version logical id change with every code edit, so they are
masked: a snapshot changes only when the infrastructure does. Update deliberately
with ``pytest --snapshot-update`` and review the diff like code.
"""

from __future__ import annotations

import json
import re

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
VERSION_ID = re.compile(r"(CurrentVersion)[0-9A-F]{8}[0-9a-f]{32}")


def normalized(template: dict) -> dict:
    text = json.dumps(template, sort_keys=True)
    text = ASSET_HASH.sub("<asset-hash>", text)
    text = VERSION_ID.sub(r"\1<hash>", text)
    return json.loads(text)


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def test_template_snapshot(template, snapshot_json):
    assert normalized(template.to_json()) == snapshot_json


def test_normalization_masks_only_hashes():
    raw = {"S3Key": "a" * 64 + ".zip", "Ref": "ApiFunctionCurrentVersion478B78C87d7fb714f673092e9ee02541e5a09394",
           "Name": "live"}
    assert normalized(raw) == {"S3Key": "<asset-hash>.zip", "Ref": "ApiFunctionCurrentVersion<hash>", "Name": "live"}
