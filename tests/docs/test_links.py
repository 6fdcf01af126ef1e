"""Every local link and anchor in README.md and docs/ resolves (no network: web links are not fetched)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.docs.markdown import DOCUMENTS, REPO, anchors, links

#: Documents another branch is writing, linked before they land (none now: every link must resolve).
PENDING: set[str] = set()


def broken_links(document: Path) -> list[str]:
    broken = []
    for link in links(document):
        if link.startswith(("http://", "https://", "mailto:")):
            continue
        target, _, fragment = unquote(link).partition("#")
        path = (document.parent / target).resolve() if target else document
        relative = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)
        if not path.exists():
            if relative not in PENDING:
                broken.append(f"{link}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{link}: no heading #{fragment} in {relative}")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(REPO).as_posix())
def test_links_resolve(document):
    assert broken_links(document) == []


def test_the_check_finds_a_broken_link_and_anchor(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [bad](#nothing) [gone](missing.md) [web](https://example.com)\n"
                    "`[code](not-a-link.md)`\n")
    monkeypatch.setattr("tests.docs.test_links.REPO", tmp_path)
    assert broken_links(page) == ["#nothing: no heading #nothing in page.md", "missing.md: no such file"]
