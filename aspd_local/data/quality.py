"""Is an answer of the base model usable as training text? Degenerate answers are dropped, not fixed.

Also what the objective quality checks read from a prompt and an answer (``aspd_local.bench.checks``):
the number of items a prompt asks for, and an answer's top-level list items."""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+")

LOOPING = frozenset({"repeated_line", "repeated_phrase"})  # problems that only grow as decoding goes on


def _norm(line: str) -> str:
    """A line without its list marker, bold marks and case: what repeats when the model loops."""
    line = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", line)
    return line.replace("**", "").strip().lower()


def answer_problems(prompt: str, answer: str, examples: tuple[str, ...] = ()) -> list[str]:
    """Reasons to drop ``answer`` (empty when it is usable). Short reason keys, for the statistics.
    ``examples``: texts the model was shown (an answer that copies one is not its own answer)."""
    out = []
    text = answer.strip()
    if len(_WORD.findall(text)) < 2:
        return ["empty"]
    if any(_norm(text) == _norm(e) or (len(text) > 40 and _norm(text) in _norm(e)) for e in examples):
        out.append("copies_example")
    if _norm(text).startswith(_norm(prompt).rstrip("?.!")):
        out.append("echoes_prompt")
    lines = [_norm(ln) for ln in text.splitlines() if _norm(ln)]
    counts = Counter(lines)
    if any(c >= (2 if len(ln) >= 8 else 3) for ln, c in counts.items()):
        out.append("repeated_line")
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) >= 40 and len(set(words)) / len(words) < 0.3:
        out.append("low_diversity")
    grams = [tuple(words[i:i + 6]) for i in range(len(words) - 5)]
    if grams and Counter(grams).most_common(1)[0][1] >= 3:
        out.append("repeated_phrase")
    return out


def ends_cleanly(text: str) -> bool:
    """The text ends at a sentence or line end (not cut in the middle of a sentence)."""
    t = text.rstrip()
    return bool(t) and (t[-1] in ".!?:)\"'*" or text.endswith("\n"))


_ITEM_WORD = re.compile(r"[\w']+")
_ITEM = re.compile(r"^(?P<indent>[ \t]*)(?:(?:[-*+\u2022]|\d{1,2}[.)])[ \t]+(?P<body>\S.*)|(?P<bold>\*\*[^*\n]+\*\*.*))$")
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                 "ten": 10, "couple": 2, "pair": 2}
# a number right before one of these is an amount, not a count of items to list
_NOT_ITEMS = re.compile(r"^(?:minutes?|hours?|days?|weeks?|months?|years?|seconds?|times?|percent|%|kg|km|"
                        r"miles?|meters?|metres?|dollars?|euros?|pounds?|people|persons?|year-old|sentences?|"
                        r"words?|lines?|paragraphs?|pages?)\b")
_COUNT = re.compile(r"\b(?P<n>[2-9]|10|two|three|four|five|six|seven|eight|nine|ten|couple|pair)\b(?:\s+of)?"
                    r"\s+(?P<next>\S+)", re.IGNORECASE)


def asked_count(prompt: str) -> int | None:
    """The number of items ``prompt`` asks for, read from its words (None: no count asked)."""
    for m in _COUNT.finditer(prompt):
        nxt = m.group("next").lower()
        if _NOT_ITEMS.match(nxt):
            continue
        n = m.group("n").lower()
        return int(n) if n.isdigit() else _NUMBER_WORDS[n]
    return None


def count_of(row: dict) -> int | None:
    """What a prompt row asks for: its ``count`` field when the file has one, else read from the prompt."""
    if "count" in row:
        return row["count"]
    return asked_count(row["prompt"])


def list_items(text: str) -> list[str]:
    """The top-level list items of ``text`` (see the module's docstring)."""
    found = []
    for line in text.splitlines():
        m = _ITEM.match(line)
        if m:
            found.append((len(m.group("indent").expandtabs(4)), (m.group("body") or m.group("bold")).strip()))
    if not found:
        return []
    top = min(indent for indent, _ in found)
    return [body for indent, body in found if indent == top]


def item_name(item: str) -> str:
    """What an item is about, to find duplicates: its bold title, else the text before a colon or dash,
    else its first six words; lower case, without punctuation."""
    bold = re.match(r"\*\*([^*]+)\*\*", item)
    head = bold.group(1) if bold else re.split(r":|\s[-\u2013\u2014]\s", item, maxsplit=1)[0]
    words = _ITEM_WORD.findall(head.lower())
    return " ".join(words[:6])


def distinct_2(text: str) -> float | None:
    words = _ITEM_WORD.findall(text.lower())
    grams = list(zip(words, words[1:]))
    return round(len(set(grams)) / len(grams), 4) if grams else None




def words(text: str) -> list[str]:
    """The words of ``text`` (letters, digits, apostrophes)."""
    return _ITEM_WORD.findall(text)
