"""What type checkers see of the two packages: their markers, and what ``cdk_app`` exports."""

from __future__ import annotations

import importlib
from pathlib import Path

import cdk_app

REPO = Path(__file__).resolve().parents[2]


def test_both_packages_are_typed():
    assert (REPO / "cdk_app" / "py.typed").exists()
    assert (REPO / "lambda_src" / "fastapi_lambda" / "py.typed").exists()
    assert 'cdk_app = ["py.typed"]' in (REPO / "pyproject.toml").read_text()


def test_the_exports_type_checkers_read_are_the_lazy_ones():
    assert cdk_app.__all__ == sorted(cdk_app._EXPORTS)
    for name in cdk_app.__all__:
        assert getattr(cdk_app, name) is getattr(importlib.import_module(f"cdk_app.{cdk_app._EXPORTS[name]}"), name)
