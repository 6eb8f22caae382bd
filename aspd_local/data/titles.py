"""Short, unique titles for the branches of a block, derived from each item's own text."""

from __future__ import annotations

import re

MAX_TITLE_WORDS = 5
MAX_TITLE_CHARS = 40

_MARKER = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+)")
_BOLD = re.compile(r"^\*\*(.+?)\*\*")
_LABEL = re.compile(r"^([^:\n]{1,40}?):\s")
_WORD = re.compile(r"[\w'’-]+")


def _clean(s: str) -> str:
    s = s.replace("**", "").replace("__", "").replace("`", "")
    s = re.sub(r"\s+", " ", s).strip(" .:;,-")
    return s


_TRAILING = {"a", "an", "the", "of", "with", "and", "or", "to", "in", "for", "on", "at", "by", "your", "my", "from",
             "into", "that", "which"}


FIRST_WORDS = 4  # titles made of an item's first words (no lead to take) are cut shorter


def _short(s: str, n_words: int = MAX_TITLE_WORDS) -> str:
    """At most ``n_words`` words and MAX_TITLE_CHARS characters, not ending on a little word ("and")."""
    words = _WORD.findall(s)[:n_words]
    while len(words) > 1 and len(" ".join(words)) > MAX_TITLE_CHARS:
        words.pop()
    while len(words) > 1 and words[-1].lower() in _TRAILING:
        words.pop()
    return " ".join(words)[:MAX_TITLE_CHARS]


def title_of(item: str) -> str:
    """A title for one item: its bold lead, its ``Label:`` lead, or its first words ("" if none)."""
    first = item.strip().split("\n", 1)[0]
    body = _MARKER.sub("", first).strip()
    m = _BOLD.match(body)
    if m and _WORD.search(m.group(1)):
        return _short(_clean(m.group(1)))
    m = _LABEL.match(body)
    if m and len(_WORD.findall(m.group(1))) <= MAX_TITLE_WORDS:
        return _short(_clean(m.group(1)))
    return _short(_clean(body), FIRST_WORDS)


def unique_titles(items: list[str]) -> list[str]:
    """Titles for the items of one block, unique within it ("Item k" where an item gives none)."""
    titles = [title_of(it) or f"Item {k}" for k, it in enumerate(items, 1)]
    seen: dict[str, int] = {}
    for t in titles:
        seen[t.lower()] = seen.get(t.lower(), 0) + 1
    out = []
    used: set[str] = set()
    for k, t in enumerate(titles, 1):
        if seen[t.lower()] > 1 or t.lower() in used:
            t = f"{t} {k}" if len(t) + 3 <= MAX_TITLE_CHARS else f"Item {k}"
        used.add(t.lower())
        out.append(t)
    return out


_NUMBER = re.compile(r"^\s*(\d+[.)])\s")


def numbered(items: list[str], titles: list[str]) -> list[str]:
    """Titles of a numbered list carry each item's number ("2. Rinse"): a branch sees its own title but not
    its siblings' text, so this is how it knows which number to write."""
    out = []
    for it, t in zip(items, titles):
        m = _NUMBER.match(it)
        out.append(f"{m.group(1)} {t}" if m else t)
    return out
