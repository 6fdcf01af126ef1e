"""Two adjustments that keep FastAPI's own work off the cold start, each opt-in and harmless to an app.

- :func:`defer_openapi_models`: FastAPI's OpenAPI models (~60 pydantic models, about a sixth of a
  cold import) are built when the schema is first made, not when FastAPI is imported.
- :func:`defer_pydantic_v1_import`: FastAPI's pydantic-v1 compatibility checks stop importing
  ``pydantic.v1`` (~18 ms).

FastAPI asks, for every route parameter and every encoded value, whether it is a pydantic
v1 model, and imports ``pydantic.v1`` to find out: about 7% of a cold start, for apps that
have no v1 model at all. No v1 model can exist before something imported ``pydantic.v1``,
so until then the answer is "no" without the import; after it, FastAPI's own check runs.
Opt in by calling :func:`defer_pydantic_v1_import` before the app's routes are built.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, cast

from fastapi_lambda import lifecycle


def _deferred(check: Callable[[Any], object]) -> Callable[[Any], object]:
    def check_once_v1_exists(value: Any) -> object:  # what FastAPI's check answers (a bool)
        return "pydantic.v1" in sys.modules and check(value)

    check_once_v1_exists.original = check  # type: ignore[attr-defined]
    return check_once_v1_exists


def defer_pydantic_v1_import() -> bool:
    """Apply to the installed FastAPI; False when its layout is not the one this knows (nothing changed)."""
    try:
        from fastapi import encoders
        from fastapi._compat import shared
    except ImportError:
        return False
    names = ("is_pydantic_v1_model_class", "is_pydantic_v1_model_instance")
    if not all(callable(getattr(shared, name, None)) for name in names):
        return False
    for module, name in ((shared, names[0]), (shared, names[1]), (encoders, names[1])):
        current = getattr(module, name, None)
        if callable(current) and not hasattr(current, "original"):
            setattr(module, name, _deferred(current))
    return True


def defer_openapi_models() -> bool:
    """Import FastAPI with its own pydantic models' builds deferred to their first use; True if done.

    Call before anything imports FastAPI. Applies on Lambda in lazy mode only (eager mode builds
    before traffic anyway): FastAPI's OpenAPI models then build with the first schema made
    (``/openapi.json``), on the one thread a Lambda instance serves requests on; pydantic's first
    build of a deferred model is not thread-safe, so threaded local servers keep them eager. The
    app's own models are not touched: pydantic's default is back before this returns.
    """
    if "fastapi" in sys.modules or not lifecycle.on_lambda() or lifecycle.import_mode() == "eager":
        return False
    from pydantic import BaseModel

    config = BaseModel.model_config
    before = config.get("defer_build", _UNSET)
    config["defer_build"] = True  # every model class made from now on inherits it from BaseModel
    try:
        import fastapi.openapi.models  # noqa: F401  # pyright: ignore[reportUnusedImport]  # (imports FastAPI itself first)
    finally:
        if before is _UNSET:
            config.pop("defer_build", None)
        else:
            config["defer_build"] = cast(bool, before)  # the value it had: not _UNSET, so a bool
    return True


_UNSET = object()
