"""Routes of the FastAPI application, through an ASGI test client."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from service.main import create_app


@pytest.fixture
def client():
    return TestClient(create_app(environment="test"))


def test_root_names_the_environment(client):
    response = client.get("/")

    assert response.status_code == 200
    assert response.json() == {"message": "Hello from FastAPI on AWS Lambda", "environment": "test"}


def test_health(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_environment_defaults_to_the_variable_the_stack_sets(monkeypatch):
    monkeypatch.setenv("APP_ENVIRONMENT", "staging")

    assert TestClient(create_app()).get("/").json()["environment"] == "staging"


def test_post_to_a_read_only_route_is_405(client):
    assert client.post("/health").status_code == 405
