"""Reading the documentation as the tests need it: its links, headings and marked code blocks.

A block is run by a test when the line before its fence is ``<!-- docs-test: <name> -->``; the
name says which test runs it (``consumer-app``, ``local``, ...).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The documentation a reader follows: README and everything under docs/.
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```")
_MARK = re.compile(r"^<!--\s*docs-test:\s*([\w-]+)\s*-->\s*$")


def _without_code(text: str) -> str:
    """The text with fenced blocks and inline code removed: links inside them are examples, not links."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def links(path: Path) -> list[str]:
    return [a or b for a, b in _LINK.findall(_without_code(path.read_text()))]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*|_(?=\W)|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in _without_code(path.read_text()).splitlines():
        if match := re.match(r"^#{1,6}\s+(.*)$", line):
            base, n = anchor(match.group(1)), 0
            while (name := base if n == 0 else f"{base}-{n}") in found:
                n += 1
            found.add(name)
    found.update(re.findall(r'<a (?:name|id)="([^"]+)"', path.read_text()))
    return found


def blocks(path: Path, name: str) -> list[str]:
    """The code blocks of ``path`` marked ``<!-- docs-test: name -->``, in order."""
    lines, found = path.read_text().splitlines(), []
    for i, line in enumerate(lines):
        mark = _MARK.match(line)
        if mark and mark.group(1) == name and i + 1 < len(lines) and _FENCE.match(lines[i + 1]):
            end = next(j for j in range(i + 2, len(lines)) if _FENCE.match(lines[j]))
            found.append("\n".join(lines[i + 2:end]) + "\n")
    return found


#: A request line of a marked block ends with the status it answers: ``curl ... # 202 what it says``.
_EXPECTED = re.compile(r"\s+#\s*(\d{3})\b.*$")


def requests(block: str) -> list[tuple[str, int]]:
    """Each ``curl`` command of ``block`` (continuation lines joined) with the status its comment documents."""
    commands, current = [], ""
    for line in block.splitlines():
        current += line.rstrip().removesuffix("\\") + (" " if line.rstrip().endswith("\\") else "")
        if not line.rstrip().endswith("\\"):
            commands.append(current.strip())
            current = ""
    found = []
    for command in commands:
        if not command.startswith("curl "):
            continue
        expected = _EXPECTED.search(command)
        assert expected, f"a request in a docs-test block must end with '# <status> ...': {command}"
        found.append((command[:expected.start()], int(expected.group(1))))
    return found
