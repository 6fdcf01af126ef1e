"""The example app's settings: non-secret ones under ``CONFIG_PARAMETER_PATH``, one secret.

Imported by the routes that need them on their first call, so pydantic-settings stays off
the cold start of every other route.
"""

from __future__ import annotations

from fastapi_lambda.parameters import AppConfig, AppSettings
from pydantic import Field, SecretStr


class ServiceSettings(AppSettings):
    """What ``GET /config`` shows: nothing here may be secret."""

    greeting: str = "Hello from FastAPI on AWS Lambda"
    page_size: int = Field(default=20, ge=1, le=1000)
    maintenance_mode: bool = False


class ServiceSecrets(AppSettings):
    """Secrets, from Secrets Manager (``CONFIG_SECRETS``) or SecureString (``CONFIG_SECURE_PARAMETERS``)."""

    partner_api_key: SecretStr


settings = AppConfig(ServiceSettings)
secrets = AppConfig(ServiceSecrets)
