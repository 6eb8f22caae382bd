"""Finished conversations kept in the KV cache for reuse: cached lines, least recently used first.

A cached line is a sequence id whose cells hold a finished request's prompt (and answer). A new request
whose prompt starts with one (the next chat turn, a repeated system prompt) copies that prefix and
decodes only the rest. Lines are evicted least recently used first when cells or sequence ids are
needed, and beyond ``max_lines``.
"""

from __future__ import annotations

from collections import OrderedDict

from .kv import KvCache, safe_prefix


class PrefixCache:
    def __init__(self, cache: KvCache, max_lines: int):
        self.cache, self.max_lines = cache, max_lines
        self._lines: OrderedDict[int, None] = OrderedDict()  # sequence ids, least recently used first

    def __len__(self) -> int:
        return len(self._lines)

    def __contains__(self, seq: int) -> bool:
        return seq in self._lines

    def seqs(self) -> list[int]:
        """Sequence ids, least recently used first."""
        return list(self._lines)

    def best_prefix(self, tokens: list[int]) -> tuple[int | None, int]:
        """The line sharing the longest clean prefix with ``tokens`` (never all of them: the last prompt
        token is always decoded for its logits), and that prefix's length."""
        best, best_n = None, 0
        limit = len(tokens) - 1
        for seq in self._lines:
            line = self.cache.lines[seq]
            m, lim, lt = 0, min(limit, len(line.tokens)), line.tokens
            while m < lim and lt[m] == tokens[m]:
                m += 1
            m = safe_prefix(line.positions, m)
            if m > best_n:
                best, best_n = seq, m
        return best, best_n

    def touch(self, seq: int) -> None:
        self._lines.move_to_end(seq)

    def add(self, seq: int) -> None:
        """Keep a finished request's home sequence (evicting the oldest lines beyond the bound)."""
        self._lines[seq] = None
        while len(self._lines) > self.max_lines:
            self.evict()

    def evict(self, seq: int | None = None) -> None:
        """Forget a line (the least recently used one by default) and free its cells."""
        if seq is None:
            seq = next(iter(self._lines))
        del self._lines[seq]
        self.cache.release(seq)
