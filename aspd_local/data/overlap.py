"""Training never sees the independent evaluation sets (``benchmarks/independent_prompts.jsonl``,
``_2`` and ``_3``, ``paths.INDEPENDENT_SETS``): a training prompt identical to one of their prompts, or with token Jaccard similarity >= 0.8 to one, is
dropped (by ``data prompts`` before it is answered, and again by ``data build``). Words are read as
``benchmarks/overlap_check.py`` reads them: lower case, ``[a-z0-9]+`` with an apostrophe suffix,
punctuation dropped."""

from __future__ import annotations

import re
from pathlib import Path

from . import paths
from .jsonl import read_jsonl

NEAR_DUPLICATE = 0.8

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def load_independent(path: str | Path | None = None) -> list[str]:
    """The prompts of one independent set, or (``path`` None) of every one of ``paths.INDEPENDENT_SETS``
    that exists ([] when none does)."""
    files = [Path(path)] if path is not None else list(paths.INDEPENDENT_SETS)
    return [r["prompt"] for f in files if f.exists() for r in read_jsonl(f, required=("prompt",))]


class IndependentSet:
    """Which prompts are too close to the independent set (identical, or Jaccard >= ``threshold``)."""

    def __init__(self, prompts: list[str], threshold: float = NEAR_DUPLICATE):
        self.threshold = threshold
        self.sets = [set(words(p)) for p in prompts]
        self.norm = {" ".join(words(p)) for p in prompts}
        self.by_word: dict[str, list[int]] = {}
        for i, s in enumerate(self.sets):
            for w in s:
                self.by_word.setdefault(w, []).append(i)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "IndependentSet":
        return cls(load_independent(path))

    def __len__(self) -> int:
        return len(self.sets)

    def closest(self, prompt: str) -> float:
        """The largest token Jaccard similarity of ``prompt`` to an independent prompt (1.0: identical)."""
        ws = words(prompt)
        if " ".join(ws) in self.norm:
            return 1.0
        s = set(ws)
        cands = {i for w in s for i in self.by_word.get(w, ())}
        return max((jaccard(s, self.sets[i]) for i in cands), default=0.0)

    def too_close(self, prompt: str) -> bool:
        return bool(self.sets) and self.closest(prompt) >= self.threshold

    def split(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        """(rows kept, rows dropped)."""
        kept, dropped = [], []
        for r in rows:
            (dropped if self.too_close(r["prompt"]) else kept).append(r)
        return kept, dropped
