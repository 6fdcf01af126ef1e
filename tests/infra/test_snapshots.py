"""Snapshots of each environment's normalized template.

Asset hashes and the version logical id change with every code edit, so they are
masked (:mod:`cdk_app.testing`): a snapshot changes only when the infrastructure does. Update deliberately
with ``pytest --snapshot-update`` and review the diff like code.
"""

from __future__ import annotations

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from cdk_app.testing import normalized_template


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def test_template_snapshot(template, snapshot_json):
    assert normalized_template(template) == snapshot_json
