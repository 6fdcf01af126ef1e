"""App settings end to end: Parameter Store and Secrets Manager on a moto server, read through
Powertools Parameters, cached, refreshed, and a 503 (one log line, no value) when one is missing."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from fastapi_lambda import lifecycle
from fastapi_lambda import parameters as config
from fastapi_lambda.parameters import AppConfig, AppSettings, ConfigUnavailable
from pydantic import SecretStr
from service import parameters as service_config

from tests.app.conftest import SECRET_VALUE, SECURE_VALUE, jwt_authorizer
from tests.app.test_auth import call

SIGNED_IN = jwt_authorizer()


class Everything(AppSettings):
    greeting: str
    page_size: int = 20
    partner_api_key: SecretStr
    secure: SecretStr


def test_settings_come_from_the_path_the_secret_and_the_secure_string(parameters, monkeypatch):
    monkeypatch.setenv("CONFIG_SECURE_PARAMETERS", f'{{"secure": "{parameters.secure_name}"}}')

    settings = AppConfig(Everything).get()

    assert (settings.greeting, settings.page_size) == ("Hello from Parameter Store", 50)
    assert settings.partner_api_key.get_secret_value() == SECRET_VALUE
    assert settings.secure.get_secret_value() == SECURE_VALUE  # decrypted
    assert SECRET_VALUE not in repr(settings) and SECURE_VALUE not in repr(settings)
    assert parameters.calls == {"GetParametersByPath": 1, "GetSecretValue": 1, "GetParameter": 1}


def test_a_class_reads_only_the_secrets_it_declares(parameters):
    assert service_config.settings.get().greeting == "Hello from Parameter Store"

    assert "GetSecretValue" not in parameters.calls


def test_a_second_read_within_the_max_age_makes_no_call(parameters):
    first = service_config.settings.get()
    calls = sum(parameters.calls.values())

    assert service_config.settings.get() is first
    assert AppConfig(service_config.ServiceSettings).get() == first  # another reader: Powertools' cache
    assert sum(parameters.calls.values()) == calls == 1


def test_values_are_read_again_after_the_max_age(parameters, monkeypatch):
    monkeypatch.setenv("CONFIG_MAX_AGE_SECONDS", "0.3")
    assert service_config.settings.get().page_size == 50
    parameters.ssm.put_parameter(Name=f"{parameters.path}page-size", Value="75", Type="String", Overwrite=True)

    assert service_config.settings.get().page_size == 50  # still within the max age
    time.sleep(0.35)

    assert service_config.settings.get().page_size == 75
    assert parameters.calls["GetParametersByPath"] == 2


def test_a_snapstart_restore_drops_the_cache(parameters):
    assert service_config.settings.get().page_size == 50
    parameters.ssm.put_parameter(Name=f"{parameters.path}page-size", Value="75", Type="String", Overwrite=True)

    lifecycle.after_restore()  # what the runtime runs after restoring a snapshot

    assert service_config.settings.get().page_size == 75  # max age 300 s: only the restore explains it
    assert config.ssm_provider.value is not None  # a new provider (client and cache) was made


def test_get_config_shows_the_non_secret_settings_only(parameters):
    status, _, body = call("/config", authorizer=SIGNED_IN)

    assert status == 200
    assert body == {"greeting": "Hello from Parameter Store", "page_size": 50, "maintenance_mode": False}


def test_get_config_needs_a_signed_in_caller(parameters):
    assert call("/config")[0] == 401


def test_a_route_that_needs_a_secret_reads_it(parameters):
    assert call("/partner/status", authorizer=SIGNED_IN)[:3:2] == (200, {"partner": "configured"})


def test_a_missing_secret_is_a_503_and_one_log_line_without_a_value(parameters, monkeypatch, caplog, capsys):
    parameters.secretsmanager.delete_secret(SecretId=parameters.secret_arn, ForceDeleteWithoutRecovery=True)
    caplog.set_level(logging.INFO)

    status, headers, body = call("/partner/status", authorizer=SIGNED_IN)
    again = call("/partner/status", authorizer=SIGNED_IN)

    assert status == again[0] == 503
    assert headers["retry-after"] == "5" and "unavailable" in body["detail"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # the second request within RETRY_AFTER_S reads nothing and logs nothing
    assert "partner_api_key" in errors[0].getMessage() and "ResourceNotFoundException" in errors[0].getMessage()
    assert parameters.calls["GetSecretValue"] == 1
    assert call("/config", authorizer=SIGNED_IN)[0] == 200  # a route that needs no secret is unaffected
    assert SECRET_VALUE not in caplog.text + capsys.readouterr().out


class Strict(AppSettings):
    greeting: str
    page_size: int
    required_flag: bool
    partner_api_key: SecretStr


strict = AppConfig(Strict)
strict_app = FastAPI()


@strict_app.get("/strict")
async def needs_settings(settings: Annotated[Strict, Depends(strict)]) -> dict:
    return {"greeting": settings.greeting}


@strict_app.get("/free")
async def free() -> dict:
    return {"ok": True}


def test_missing_or_invalid_parameters_are_named_never_shown(parameters, caplog, capsys):
    parameters.ssm.put_parameter(Name=f"{parameters.path}page-size", Value=SECRET_VALUE, Type="String",
                                 Overwrite=True)  # not an int; its text must not reach a log
    strict.clear()
    client = TestClient(strict_app)
    caplog.set_level(logging.INFO)

    assert client.get("/strict").status_code == 503
    assert client.get("/free").status_code == 200
    with pytest.raises(ConfigUnavailable, match=r"page_size \(int_parsing\); required_flag \(missing\)"):
        strict.get()
    [line] = [r.getMessage() for r in caplog.records if r.name == config.logger.name]
    assert "page_size (int_parsing)" in line and "required_flag (missing)" in line
    assert SECRET_VALUE not in caplog.text + capsys.readouterr().out


def test_an_unreadable_path_is_a_503_not_a_crash(parameters, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: the read fails fast
    config.ssm_provider.reset()

    status, headers, _ = call("/config", authorizer=SIGNED_IN)

    assert status == 503 and headers["retry-after"] == "5"


def test_a_failed_refresh_serves_the_values_read_before(parameters, monkeypatch, caplog):
    monkeypatch.setenv("CONFIG_MAX_AGE_SECONDS", "0")
    assert service_config.settings.get().page_size == 50
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # Parameter Store is down
    config.ssm_provider.reset()

    assert service_config.settings.get().page_size == 50
    assert "could not be read (EndpointConnectionError); serving the values read before" in caplog.text


def test_names_must_be_a_json_object(parameters, monkeypatch):
    monkeypatch.setenv("CONFIG_SECRETS", "partner_api_key=arn")

    with pytest.raises(ConfigUnavailable, match="CONFIG_SECRETS must be a JSON object"):
        service_config.secrets.get()


def test_no_setting_is_read_at_init(monkeypatch):
    from tests.app.conftest import loaded_in_lazy_mode

    code = "import service.handler"
    assert loaded_in_lazy_mode(code, {"pydantic_settings", "boto3"}) == []
