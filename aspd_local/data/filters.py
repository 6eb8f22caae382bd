"""What a training answer must get right beyond being well formed (issue 13): the number of items the
prompt asks for, no item twice, and titles that name distinct things.

- **count**: a prompt that asks for N items (its row's ``count``) needs an answer with N top-level list
  items (``quality.list_items``, the reading ``bench`` checks use) and blocks with N branches in all;
- **duplicate items**: two top-level items with the same name (``quality.item_name``);
- **titles** of a block, normalised (lower case, numbers and punctuation dropped, little words such as
  "the" and "of" dropped, a plural ``s`` dropped): two equal (``duplicate_titles``), one contained in
  another ("Apples" and "Green apples": ``near_duplicate_titles``), or one made only of placeholder words
  such as "Tip", "Reason 2", "Step one", "Item 3" (``generic_title``).
"""

from __future__ import annotations

import re

from .quality import item_name, list_items
from .segments import Block, Segment

_STOP = frozenset("a an the of and or to in for on with your my at by is are its it as from this that".split())
GENERIC = frozenset(
    "tip reason step item point idea example option way fact thing part section note key main important other "
    "another first second third fourth fifth sixth seventh eighth ninth tenth final last next one two three "
    "four five six seven eight nine ten number no".split())
# not placeholders: "Pros" / "Cons", "Advantages" / "Disadvantages", "Similarities" / "Differences" name the
# two halves of an answer (and "Benefit 1", "Benefit 2" are duplicates anyway)
_LETTERS = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _singular(w: str) -> str:
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w


def title_words(title: str) -> tuple[str, ...]:
    """A title's words as compared: lower case, no numbers or punctuation, no little words, singular."""
    return tuple(_singular(w) for w in _LETTERS.findall(title.lower()) if w not in _STOP)


def is_generic(title: str) -> bool:
    """Only placeholder words ("Tip", "Reason 2", "Step one", "Item 3", "Key point"), or none at all."""
    return all(w in GENERIC for w in title_words(title))


def title_problems(titles: list[str]) -> list[str]:
    """Reasons the titles of one block do not name distinct things (empty when they do)."""
    out = []
    keys = [title_words(t) for t in titles]
    if any(is_generic(t) for t in titles):
        out.append("generic_title")
    if len(set(keys)) < len(keys):
        out.append("duplicate_titles")
    else:
        sets = [set(k) for k in keys]
        if any(i != j and sets[i] and sets[i] <= sets[j] for i in range(len(sets)) for j in range(len(sets))):
            out.append("near_duplicate_titles")
    return out


def duplicate_items(answer: str) -> bool:
    names = [n for n in (item_name(i) for i in list_items(answer)) if n]
    return len(set(names)) < len(names)


def count_problems(answer: str, segments: list[Segment], count: int | None) -> list[str]:
    """``count_mismatch``: not ``count`` top-level list items; ``count_mismatch_branches``: the items are
    right but the blocks have another number of branches in all."""
    if count is None:
        return []
    if len(list_items(answer)) != count:
        return ["count_mismatch"]
    if sum(len(s.branches) for s in segments if isinstance(s, Block)) != count:
        return ["count_mismatch_branches"]
    return []


def answer_filter_problems(answer: str, segments: list[Segment], count: int | None) -> list[str]:
    """Every reason of this module to drop an answer (empty when it is kept)."""
    out = count_problems(answer, segments, count)
    if duplicate_items(answer):
        out.append("duplicate_items")
    for b in segments:
        if isinstance(b, Block):
            out += [p for p in title_problems(b.titles) if p not in out]
    return out
