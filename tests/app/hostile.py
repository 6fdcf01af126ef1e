"""Hypothesis strategies for request bodies a client may send on purpose or by accident.

``json_values`` are what strict JSON (RFC 8259) can hold, within the guard's limits. Each
hazard is a fragment of JSON text that Python's ``json`` accepts but that must never reach an
app: ``NaN``/``Infinity``, a number beyond a double, a lone UTF-16 surrogate, nesting deeper
than the limit. :func:`hostile_bodies` puts one at a random place of a valid request body, so
it travels as far into the app as the app lets it.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi_lambda.constants import DEFAULT_MAX_JSON_DEPTH
from hypothesis import strategies as st

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)

non_finite = st.sampled_from(["NaN", "Infinity", "-Infinity"])
out_of_range = st.one_of(
    st.builds(lambda sign, exponent: f"{sign}1e{exponent}", st.sampled_from(["", "-"]), st.integers(309, 100_000)),
    st.builds(lambda digits: "9" * digits + ".5", st.integers(310, 4000)),  # a decimal, not an exponent
)
lone_surrogate = st.builds(lambda before, code, after: json.dumps(before)[:-1] + f"\\u{code:04x}" + json.dumps(after)[1:],
                           st.text(max_size=4), st.integers(0xD800, 0xDFFF), st.text(max_size=4)).filter(
    lambda text: not _pairs(text))
too_deep = st.one_of(st.integers(DEFAULT_MAX_JSON_DEPTH + 1, 3000).map(lambda depth: "[" * depth + "]" * depth),
                     st.integers(DEFAULT_MAX_JSON_DEPTH + 1, 900).map(lambda depth: '{"a":' * depth + "1" + "}" * depth))
#: One hazard, as JSON text that stands where a value may: each must be refused with a 400.
hazards = st.one_of(non_finite, out_of_range, lone_surrogate, too_deep)


def _pairs(text: str) -> bool:
    """Whether a generated escape happened to complete a surrogate pair with a neighbouring character."""
    try:
        json.loads(text).encode()
    except UnicodeEncodeError:
        return False
    return True


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    paths = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            paths += _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths += _paths(child, (*path, index))
    return paths


_MARK = "\x00hazard\x00"


@st.composite
def hostile_bodies(draw: st.DrawFn, valid: dict[str, Any]) -> str:
    """``valid`` (a body the route accepts) as JSON text with a hazard in place of one of its values
    (wrapped in a few levels of ordinary JSON or not), or as one of its keys."""
    hazard = draw(hazards)
    body = json.loads(json.dumps(valid))
    path = draw(st.sampled_from(_paths(body)))
    if not path:
        return hazard
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    if hazard.startswith('"') and isinstance(parent, dict) and draw(st.booleans()):
        parent[_MARK] = 1  # a key: only text can be one
    else:
        for _ in range(draw(st.integers(0, 3))):
            hazard = draw(st.sampled_from(["[{0}, {1}]", '{{"x": {0}, "y": {1}}}'])).format(
                hazard, json.dumps(draw(json_values)))
        parent[path[-1]] = _MARK
    return json.dumps(body).replace(json.dumps(_MARK), hazard)
