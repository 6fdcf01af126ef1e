"""The one rule for a route declaration, ``"METHOD /path"``, shared by the gateway and its settings.

No CDK import: the settings validate with it without starting the jsii runtime.
"""

from __future__ import annotations

import re

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_SEGMENT = rf"/(?:[A-Za-z0-9._~-]+|\{{{_NAME}\}})"
_GREEDY = rf"/\{{{_NAME}\+\}}"  # only last, as API Gateway requires
_ROUTE = re.compile(rf"({'|'.join(METHODS)}) (/|(?:{_SEGMENT})*(?:{_SEGMENT}|{_GREEDY}))")


def parse_route(spec: object) -> tuple[str, str]:
    """``"GET /orders/{id}"`` -> ``("GET", "/orders/{id}")``; a ValueError that says how to write it otherwise."""
    match = _ROUTE.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(
            f"{spec!r} is not a route; write 'METHOD /path': METHOD one of {', '.join(METHODS)} (in capitals), "
            "one space, then a path of /-separated segments, {param} placeholders and an optional final "
            "{proxy+}, without a trailing slash, e.g. 'GET /health' or 'GET /orders/{id}'"
        )
    return match.group(1), match.group(2)
