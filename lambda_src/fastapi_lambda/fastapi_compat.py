"""Keep FastAPI's pydantic-v1 compatibility checks from importing ``pydantic.v1`` (~18 ms).

FastAPI asks, for every route parameter and every encoded value, whether it is a pydantic
v1 model, and imports ``pydantic.v1`` to find out: about 7% of a cold start, for apps that
have no v1 model at all. No v1 model can exist before something imported ``pydantic.v1``,
so until then the answer is "no" without the import; after it, FastAPI's own check runs.
Opt in by calling :func:`defer_pydantic_v1_import` before the app's routes are built.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def _deferred(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def check_once_v1_exists(value: Any) -> bool:
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
