"""Is an answer of the base model usable as training text? Degenerate answers are dropped, not fixed."""

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
