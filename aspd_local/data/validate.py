"""Structural checks of an answer's segments: the rendering invariant, and the rules of a block."""

from __future__ import annotations

import re

from collections.abc import Callable
from dataclasses import dataclass

from ..aspd.tokens import DEFAULT_SEPARATOR
from .segments import Block, Segment, render
from .titles import MAX_TITLE_CHARS, MAX_TITLE_WORDS

_NUMBER = re.compile(r"^\d+[.)] ")


@dataclass
class Rules:
    min_branches: int = 2
    min_branch_tokens: int = 6  # content tokens; shorter branches save nothing when decoded in parallel
    max_title_words: int = MAX_TITLE_WORDS
    max_title_chars: int = MAX_TITLE_CHARS
    separator: str = DEFAULT_SEPARATOR


def render_problems(answer: str, segments: list[Segment]) -> list[str]:
    return [] if render(segments) == answer else ["render_mismatch"]


def block_problems(block: Block, tokenize: Callable[[str], list[int]], rules: Rules | None = None) -> list[str]:
    """Reasons the block cannot be a training block (empty when it can)."""
    rules = rules or Rules()
    out = []
    if len(block.branches) < rules.min_branches:
        out.append("one_branch")
    titles = [t.strip().lower() for t in block.titles]
    if len(set(titles)) != len(titles):
        out.append("duplicate_titles")
    for t in block.titles:
        body = _NUMBER.sub("", t)  # a numbered list's titles carry the item number (titles.numbered)
        if (not body.strip() or "\n" in t or rules.separator in t or len(body) > rules.max_title_chars
                or len(body.split()) > rules.max_title_words):
            out.append("bad_title")
            break
    if any(len(tokenize(b.content)) < rules.min_branch_tokens for b in block.branches):
        out.append("short_branch")
    return out
