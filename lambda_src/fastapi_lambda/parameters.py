"""The app's settings: typed with pydantic-settings, read from Parameter Store and Secrets Manager.

Non-secret parameters are read by path (``CONFIG_PARAMETER_PATH``, e.g. ``/orders/dev/``:
``/orders/dev/page-size`` sets ``page_size``); secrets come from Secrets Manager
(``CONFIG_SECRETS``: JSON, setting name -> secret name or ARN) and existing SecureString
parameters (``CONFIG_SECURE_PARAMETERS``: JSON, setting name -> parameter name). The
environment carries those names only, never a value. Reads go through Powertools
Parameters, cached ``CONFIG_MAX_AGE_SECONDS`` (default 300), and are made on first use,
never at init; a SnapStart restore drops the cache (and the clients)::

    class Settings(AppSettings):
        page_size: int = 20
        greeting: str

    class Secrets(AppSettings):
        partner_api_key: SecretStr  # SecretStr: never shown in a repr or a log

    settings = AppConfig(Settings)  # module level; reads nothing yet

    @app.get("/orders")
    async def orders(config: Annotated[Settings, Depends(settings)]) -> dict: ...

A setting that is missing or cannot be read answers **503** on the routes that depend on
it (with one log line naming the setting and the parameter or secret, never a value);
other routes are unaffected. Each class reads only the secrets it declares, so a route
that needs no secret never waits for (or fails on) one. Outside a request,
``settings.get()`` raises :class:`ConfigUnavailable`. Settings are read from AWS only:
no environment variables, no ``.env`` file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, cast

from fastapi import HTTPException
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from fastapi_lambda import lifecycle, observability
from fastapi_lambda.constants import (
    CONFIG_MAX_AGE_VARIABLE,
    CONFIG_PATH_VARIABLE,
    SECRETS_VARIABLE,
    SECURE_PARAMETERS_VARIABLE,
)

if TYPE_CHECKING:
    from fastapi_lambda.shapes import JsonValue

logger = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 300
#: After a failed read, requests answer 503 for this long without reading again (and without logging).
RETRY_AFTER_S = 5
S = TypeVar("S", bound="AppSettings")


class ConfigUnavailable(RuntimeError):
    """A setting is missing or could not be read; the message names it, never its value."""


def max_age_s(environ: Mapping[str, str] = os.environ) -> float:
    raw = environ.get(CONFIG_MAX_AGE_VARIABLE, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_MAX_AGE_S
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        logger.warning("%s=%r is not a number of seconds; using %s", CONFIG_MAX_AGE_VARIABLE, raw, DEFAULT_MAX_AGE_S)
        return DEFAULT_MAX_AGE_S
    return value


def _names(variable: str, environ: Mapping[str, str]) -> dict[str, str]:
    """A JSON object of setting name -> secret or parameter name, from ``variable``."""
    raw = environ.get(variable, "").strip()
    if not raw:
        return {}
    names: JsonValue
    try:
        names = json.loads(raw)
    except ValueError:
        names = None
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        raise ConfigUnavailable(f'{variable} must be a JSON object of setting name -> name, e.g. {{"api_key": "x"}}')
    return cast("dict[str, str]", names)  # every value was just found a str: all() does not narrow the dict


def setting_name(parameter: str) -> str:
    """The setting a parameter under the path sets: ``features/new-ui`` -> ``features_new_ui``."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", parameter).strip("_").lower()


# --- per-instance readers: boto3 loads with the first read --------------------------------------

def _boto_config() -> Any:
    from botocore.config import Config

    # A request waits on these: fail fast (503), the next request after RETRY_AFTER_S tries again. Parameter
    # Store and Secrets Manager answer in milliseconds: a hung one costs a request about 2 × (1 + 1) s at most.
    return Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 2})


def _make_ssm() -> Any:
    observability.trace_aws()
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    return SSMProvider(boto_config=_boto_config())


def _make_secrets() -> Any:
    observability.trace_aws()
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto_config=_boto_config())


#: Powertools providers: their clients and caches. Dropped after a SnapStart restore.
ssm_provider = lifecycle.per_instance(_make_ssm, eager=False)
secrets_provider = lifecycle.per_instance(_make_secrets, eager=False)


def _reason(error: Exception) -> str:
    """What went wrong, for a log line: the AWS error code or the exception's type, never a value."""
    from fastapi_lambda.aws import reason  # on a failure only: the module stays off the import

    return reason(error.__cause__ or error.__context__ or error)


class AwsSettingsSource(PydanticBaseSettingsSource):
    """The values of a settings class's fields from Parameter Store and Secrets Manager."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str] = os.environ) -> None:
        super().__init__(settings_cls)
        self.environ = environ
        self.max_age = max_age_s(environ)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ reads everything at once (one by-path read, one read per secret).
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        values: dict[str, Any] = {}
        path = self.environ.get(CONFIG_PATH_VARIABLE, "").strip()
        if path:
            try:
                with observability.subsegment("## ssm.get_parameters_by_path"):
                    found = ssm_provider.get().get_multiple(path, max_age=self.max_age, recursive=True)
            except Exception as error:
                raise ConfigUnavailable(f"the parameters under {path} could not be read ({_reason(error)})") from None
            for parameter, value in found.items():
                name = setting_name(parameter)
                if name in fields:
                    values[name] = value
        for variable, read in ((SECURE_PARAMETERS_VARIABLE, self._secure_parameter), (SECRETS_VARIABLE, self._secret)):
            for name, source in _names(variable, self.environ).items():
                if name not in fields:  # another class's secret: not read for this one
                    continue
                try:
                    value = read(source)
                except Exception as error:
                    kind = "SecureString parameter" if variable == SECURE_PARAMETERS_VARIABLE else "secret"
                    raise ConfigUnavailable(f"setting {name!r}: {kind} {source} could not be read "
                                            f"({_reason(error)})") from None
                values[name] = self._decoded(name, fields[name], value)
        return values

    def _secure_parameter(self, name: str) -> str:
        with observability.subsegment("## ssm.get_parameter"):
            return ssm_provider.get().get(name, max_age=self.max_age, decrypt=True)

    def _secret(self, secret_id: str) -> str | bytes:
        with observability.subsegment("## secretsmanager.get_secret_value"):
            return secrets_provider.get().get(secret_id, max_age=self.max_age)

    def _decoded(self, name: str, field: FieldInfo, value: Any) -> Any:
        """A JSON secret for a structured setting (a model, a dict) is decoded; text stays text."""
        if isinstance(value, str | bytes) and self.field_is_complex(field):
            try:
                return json.loads(value)
            except ValueError:
                raise ConfigUnavailable(f"setting {name!r} is not JSON") from None  # the message holds no value
        return value


class AppSettings(BaseSettings):
    """Extend this with your settings; read them through :class:`AppConfig`.

    Values come from the parameters under ``CONFIG_PARAMETER_PATH`` and the secrets and
    SecureString parameters named in ``CONFIG_SECRETS`` / ``CONFIG_SECURE_PARAMETERS``,
    then the fields' defaults; keyword arguments (tests) override them all.
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, AwsSettingsSource(settings_cls)


class _Loaded(NamedTuple):
    settings: Any
    expires: float  # time.monotonic()


def _invalid(error: ValidationError) -> str:
    # Locations and types only: pydantic's own message repeats the input, which may be a secret.
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'} ({e['type']})" for e in error.errors())


class AppConfig(Generic[S]):
    """The settings of ``settings_class``, read on first use and cached ``CONFIG_MAX_AGE_SECONDS``.

    A FastAPI dependency (``Depends(config)``: the settings, or 503) and, outside a request,
    :meth:`get` (the settings, or :class:`ConfigUnavailable`).
    """

    def __init__(self, settings_class: type[S]) -> None:
        self.settings_class = settings_class
        self.loaded = lifecycle.per_instance(self._load, eager=False)  # dropped after a SnapStart restore
        self.failed: tuple[float, ConfigUnavailable] | None = None

    def _load(self) -> _Loaded:
        expires = time.monotonic() + max_age_s()
        try:
            settings = self.settings_class()
        except ValidationError as error:
            raise ConfigUnavailable(f"settings missing or invalid: {_invalid(error)}") from None
        return _Loaded(settings, expires)

    def get(self) -> S:
        """The settings; :class:`ConfigUnavailable` when a setting is missing or cannot be read now.

        When a refresh fails, the values read before are served until a read succeeds.
        """
        now = time.monotonic()
        loaded = self.loaded.value
        if loaded is not None and now < loaded.expires:
            return loaded.settings
        if self.failed is not None and now - self.failed[0] < RETRY_AFTER_S:
            if loaded is not None:
                return loaded.settings
            raise self.failed[1]
        try:
            fresh = self._load()
        except ConfigUnavailable as error:
            # One line per failed read (not per request), naming what is missing, never a value.
            stale = "; serving the values read before" if loaded is not None else ""
            logger.error("Config unavailable for %s: %s%s", self.settings_class.__name__, error, stale)
            self.failed = (now, error)
            if loaded is not None:
                return loaded.settings
            raise
        self.loaded.value, self.failed = fresh, None
        return fresh.settings

    async def __call__(self) -> S:
        try:
            return self.get()
        except ConfigUnavailable:
            raise HTTPException(503, "A setting this route needs is unavailable; try again later",
                                headers={"Retry-After": str(RETRY_AFTER_S)}) from None

    def clear(self) -> None:
        """Forget the settings and any failure: the next use reads them again."""
        self.loaded.reset()
        self.failed = None
