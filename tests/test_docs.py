"""The docs' links hold: every relative link in README.md and docs/*.md names a file that exists
and, where it carries an #anchor, a heading in that file. Headings in docs/results.md are renamed
as results come in, and a link that silently stops resolving sends a reader to the top of a
5,000-line page."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]*)\)")
FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (Unicode letters kept),
    spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#+ (.*)$", FENCE.sub("", path.read_text()), flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")  # GitHub numbers repeated headings
    return out


def test_slug_follows_githubs_rules():
    assert slug("Taming's discriminator width, ndf 64: three seeds (2026-12-07)") == (
        "tamings-discriminator-width-ndf-64-three-seeds-2026-12-07"
    )
    assert slug("Four more seeds at β 0.05 (2026-12-03)") == "four-more-seeds-at-β-005-2026-12-03"
    assert slug("A = B") == "a--b"


def test_repeated_headings_get_numbered_anchors(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Top\n## mnist-vq\n```\n# not a heading\n```\n## mnist-vq\n")
    assert anchors(page) == {"top", "mnist-vq", "mnist-vq-1"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(doc):
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"[a-z]+:", target) or not target:
            continue  # http(s):, mailto: and the like are not checked here
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f"{target}: no file {path.relative_to(ROOT)}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with that anchor in {path.name}")
    assert not broken, f"{doc.name}: " + "; ".join(broken)
