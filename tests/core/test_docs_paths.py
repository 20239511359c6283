"""Every repository path the README and docs/*.md mention exists, so the docs stay true.

A mention is a backticked token or a relative Markdown link. It names a repository path when it
starts with ``./`` or ``../`` (relative to the page), with a top-level entry of the repository
(``src/``, ``tests/``, ``benchmarks/`` ...) or with an entry of the package (``bench/score.py``,
``data/profiles.yaml``, ``prompts/curate/*.txt``); other tokens (outputs such as ``build/``,
upstream files such as ``eval/eval.py``) are not paths of this repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "videoespresso"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_TOKEN = re.compile(r"`([^`\s]+)`|\]\(([^)\s#]+)(?:#[^)]*)?\)")


def _mentions(page: Path) -> list[str]:
    found = []
    for match in _TOKEN.finditer(page.read_text("utf-8")):
        token = (match.group(1) or match.group(2)).rstrip(".,:;")
        path = token.split("::", 1)[0]
        # a file (by its extension), a folder (a trailing slash) or a glob; not a template name
        # such as curate/qa or an attribute such as formats/evidence.strip_evidence_tags
        named = path.endswith("/") or "*" in path or re.search(r"\.(py|md|ya?ml|toml|sh|txt|js|css|html|json)$", path)
        if "/" in path and named and not re.search(r"[<>$]|://|^https?:|^~", path):
            found.append(token)
    return found


def _base(page: Path, token: str) -> Path | None:
    """Where ``token`` is relative to, or None when it is not a path of this repository."""
    first = token.split("::", 1)[0].split("/", 1)[0]
    if first in (".", ".."):
        return page.parent
    if first and (ROOT / first).exists():
        return ROOT
    if first and (PACKAGE / first).exists():
        return PACKAGE
    return None


def _exists(base: Path, token: str) -> bool:
    target, _, test = token.partition("::")
    target = target.rstrip("/")
    if "*" in target:
        return any(base.glob(target))
    path = (base / target).resolve()
    if not (path.is_relative_to(ROOT) and path.exists()):
        return False
    # a pytest node id: the test is in the file
    return not test or f"def {test.split('[')[0]}(" in path.read_text("utf-8")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_repository_path_a_page_mentions_exists(page):
    missing = [t for t in _mentions(page) if (base := _base(page, t)) is not None and not _exists(base, t)]
    assert missing == [], f"{page.relative_to(ROOT)} mentions paths that are not in the repository: {missing}"


def test_the_check_sees_paths():
    """The collector finds the kinds of mention the pages use (a check that finds nothing passes)."""
    found = {t for page in PAGES for t in _mentions(page) if _base(page, t) is not None}
    assert any(t.startswith("benchmarks/") for t in found) and any(t.startswith("src/") or "/" in t for t in found)
    assert len(found) > 20
