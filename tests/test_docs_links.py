"""The documentation stays inside the repository: every Markdown link in README.md and docs/ resolves to a
file or folder of the repository, nothing cites the old working copy outside it (``../shared/spec``), and
every "format.md section N" / "suffix-decoding.md section N" citation names a section that exists."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
# [text](target "title") and ![alt](target); the text may hold one level of brackets
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFDEF = re.compile(r"^[ ]{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def links(md: Path) -> list[str]:
    text = _CODE_SPAN.sub("", _FENCE.sub("", md.read_text(encoding="utf-8")))
    out = [m.group(1) for m in _INLINE.finditer(text)] + [m.group(1) for m in _REFDEF.finditer(text)]
    return [t[1:-1] if t.startswith("<") and t.endswith(">") else t for t in out]


def problem(md: Path, target: str) -> str | None:
    """Why ``target`` (a link in ``md``) does not stay in the repository, or None when it does."""
    if target.startswith("#"):
        return None  # an anchor in the same file
    if _SCHEME.match(target) or target.startswith("//"):
        return "leaves the repository (a URL)"
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    if not path:
        return None
    if path.startswith("/"):
        return "is an absolute path"
    dest = (md.parent / path).resolve()
    if not dest.is_relative_to(ROOT):
        return "points outside the repository"
    if not dest.exists():
        return "does not exist"
    return None


def test_the_documents_exist():
    for name in ("format.md", "suffix-decoding.md"):
        assert (ROOT / "docs" / name).is_file(), name


@pytest.mark.parametrize("md", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_stays_in_the_repository(md):
    bad = [f"{t} {why}" for t in links(md) if (why := problem(md, t))]
    assert not bad, f"{md.relative_to(ROOT)}: " + "; ".join(bad)


def test_the_link_checker_catches_what_it_should(tmp_path):
    md = ROOT / "docs" / "format.md"
    assert problem(ROOT / "README.md", "../shared/spec/aspd-format.md") == "points outside the repository"
    assert problem(md, "../../shared/spec/aspd-format.md") == "points outside the repository"
    assert problem(md, "https://example.com/x.md") == "leaves the repository (a URL)"
    assert problem(md, "no-such-file.md") == "does not exist"
    assert problem(md, "suffix-decoding.md#3-verifying") is None
    assert problem(md, "#1-control-tokens") is None
    page = tmp_path / "x.md"
    page.write_text("[a](one.md) ![b](two.png \"t\") `[c](in-code.md)` [`d`](<three four.md>)\n"
                    "```\n[e](fenced.md)\n```\n[ref]: five.md\n")
    assert sorted(links(page)) == ["five.md", "one.md", "three four.md", "two.png"]


def _files(*roots: str):
    for name in roots:
        p = ROOT / name
        if p.is_file():
            yield p
            continue
        for f in p.rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                yield f


def test_nothing_cites_the_shared_spec():
    hits = [str(f.relative_to(ROOT)) for f in _files("aspd_local", "convert", "README.md", "docs")
            if b"shared/spec" in f.read_bytes()]
    assert not hits, f"these files cite ../shared/spec (outside the repository): {hits}"


_HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", re.MULTILINE)
_CITE = re.compile(r"(format|suffix-decoding)\.md\)?,?\s+sections?\s+(\d+(?:\.\d+)?(?:\s*(?:,|-|and)\s*\d+(?:\.\d+)?)*)")


def _sections(name: str) -> set[str]:
    return set(_HEADING.findall((ROOT / "docs" / name).read_text(encoding="utf-8")))


def test_cited_sections_exist():
    have = {"format": _sections("format.md"), "suffix-decoding": _sections("suffix-decoding.md")}
    assert {"1", "2", "3", "4", "5", "6", "7", "8"} <= have["format"]
    assert {"1", "2", "3", "4", "5"} <= have["suffix-decoding"]
    bad = []
    for f in _files("aspd_local", "convert", "tests", "benchmarks", "README.md", "docs"):
        if f.suffix not in (".py", ".md", ".sh"):
            continue
        for m in _CITE.finditer(f.read_text(encoding="utf-8", errors="replace")):
            for n in re.findall(r"\d+(?:\.\d+)?", m.group(2)):
                if n not in have[m.group(1)]:
                    bad.append(f"{f.relative_to(ROOT)}: {m.group(0)!r}")
    assert not bad, bad
