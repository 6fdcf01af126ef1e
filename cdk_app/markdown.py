"""Generated blocks inside hand-written Markdown: ``<!-- TAG -->`` … ``<!-- /TAG -->``, rewritten in place.

``make diagram`` and ``make cost`` keep README.md's pictures and figures current this way; their tests
compare each block with a fresh one, so a stale block fails the suite.
"""

from __future__ import annotations

import re


def marker(tag: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {re.escape(tag)} -->)(.*?)(<!-- /{re.escape(tag)} -->)", re.S)


def update(text: str, blocks: dict[str, str]) -> str:
    """``text`` with the block of every tag it marks replaced (tags it does not mark are left out)."""
    for tag, block in blocks.items():
        text = marker(tag).sub(lambda match, block=block: f"{match.group(1)}\n{block}\n{match.group(3)}", text)
    return text


def stale(text: str, blocks: dict[str, str]) -> list[str]:
    """The tags ``text`` marks whose block differs from the given one."""
    return [tag for tag, block in blocks.items()
            if (match := marker(tag).search(text)) and match.group(2) != f"\n{block}\n"]


def marked(text: str, blocks: dict[str, str]) -> list[str]:
    """The tags ``text`` marks."""
    return [tag for tag in blocks if marker(tag).search(text)]
