"""Items behind the cache: ``GET /items/{key}`` answers from the cache, or from a slow source.

The source stands in for slow work (a database query, a remote API): it takes
``ITEMS_SOURCE_DELAY_MS`` (default 200 ms) and computes a value from the key. The
answer says where the value came from (``served_from``: ``cache`` or ``source``) and how
the cache fared (``cache``: hit, miss, error or skipped). A failing cache costs at most
its time budget, never the request. Any signed-in caller may read an item (401 without one).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from fastapi_lambda.auth import AUTH_RESPONSES, current_user
from fastapi_lambda.cache import Cache

#: How long an item stays cached, in seconds.
ITEM_TTL_SECONDS = 60
SOURCE_DELAY_VARIABLE = "ITEMS_SOURCE_DELAY_MS"

router = APIRouter(tags=["items"])
cache = Cache(prefix="items:")
ItemKey = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]


async def load_item(key: str) -> dict[str, Any]:
    """The slow source: waits, then derives the item from its key."""
    await asyncio.sleep(float(os.environ.get(SOURCE_DELAY_VARIABLE, 200)) / 1000)
    return {"key": key, "digest": hashlib.sha256(key.encode()).hexdigest()[:16],
            "loaded_at": datetime.now(UTC).isoformat()}


ITEM = {"description": "The item, and where it came from",
        "content": {"application/json": {"schema": {
            "type": "object", "title": "ItemAnswer", "required": ["item", "served_from", "cache"],
            "properties": {
                "item": {"type": "object", "required": ["key", "digest", "loaded_at"],
                         "properties": {"key": {"type": "string"}, "digest": {"type": "string"},
                                        "loaded_at": {"type": "string", "format": "date-time"}}},
                "served_from": {"type": "string", "enum": ["cache", "source"]},
                "cache": {"type": "string", "enum": ["hit", "miss", "error", "skipped"]}}}}}}


@router.get("/items/{key}", dependencies=[Depends(current_user)], responses={200: ITEM, **AUTH_RESPONSES})
async def get_item(key: ItemKey) -> JSONResponse:
    """The item, from the cache when it holds it, else from the source (then cached)."""
    loaded = await cache.get_or_load(key, lambda: load_item(key), ttl=ITEM_TTL_SECONDS)
    return JSONResponse({"item": loaded.value, "served_from": loaded.served_from, "cache": loaded.cache})
