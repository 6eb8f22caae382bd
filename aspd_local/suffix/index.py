"""A suffix index over token sequences.

The suffix tree of the paper, kept implicitly: the corpus of tokens plus, for every token, the
sorted positions where it occurs. The node for a pattern is the set of positions right after its
occurrences, its count is the size of that set, and its children are those positions grouped by the
token found there -- the same counts a depth-limited suffix tree stores, without materialising
the tree (a million tokens take about 12 bytes each).

Sequences are separated by a sentinel, so no match crosses from one request into the next.
The index is append-only; old sequences are evicted first-in first-out by rebuilding from the kept
ones (``TokenIndex.evict``), which is cheap next to how rarely it happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

SENTINEL = -1


class _Grow:
    """A growable int32 array."""

    __slots__ = ("buf", "n")

    def __init__(self, cap: int = 16):
        self.buf = np.empty(cap, dtype=np.int32)
        self.n = 0

    def append(self, v: int) -> None:
        if self.n == self.buf.shape[0]:
            self.buf = np.concatenate([self.buf, np.empty(self.buf.shape[0], dtype=np.int32)])
        self.buf[self.n] = v
        self.n += 1

    def extend(self, vs: np.ndarray) -> None:
        need = self.n + vs.shape[0]
        if need > self.buf.shape[0]:
            cap = max(need, 2 * self.buf.shape[0])
            nb = np.empty(cap, dtype=np.int32)
            nb[: self.n] = self.buf[: self.n]
            self.buf = nb
        self.buf[self.n:need] = vs
        self.n = need

    def view(self) -> np.ndarray:
        return self.buf[: self.n]


class TokenIndex:
    """Token sequences, searchable by suffix. ``max_depth`` bounds the match and speculation length."""

    def __init__(self, max_depth: int = 64):
        self.max_depth = max_depth
        self._corpus = _Grow(1024)
        self._where: dict[int, _Grow] = {}
        self.seq_lengths: list[int] = []  # tokens per sequence, oldest first
        self._open = False  # the last sequence may still grow (per-request index)

    # -- building -------------------------------------------------------------
    def __len__(self) -> int:
        return self._corpus.n

    @property
    def n_tokens(self) -> int:
        return sum(self.seq_lengths)

    def add_sequence(self, tokens: Sequence[int]) -> None:
        """Append a finished sequence (an earlier request's output)."""
        self.close()
        arr = np.asarray(tokens, dtype=np.int32)
        self._append(arr)
        self._append_sentinel()
        self.seq_lengths.append(int(arr.shape[0]))

    def open_sequence(self, tokens: Sequence[int] = ()) -> None:
        """Start a sequence that grows token by token (the current request)."""
        self.close()
        self.seq_lengths.append(0)
        self._open = True
        self.extend(tokens)

    def extend(self, tokens: Iterable[int]) -> None:
        if not self._open:
            self.open_sequence()
        arr = np.asarray(list(tokens), dtype=np.int32)
        if arr.size:
            self._append(arr)
            self.seq_lengths[-1] += int(arr.shape[0])

    def close(self) -> None:
        if self._open:
            self._append_sentinel()
            self._open = False

    def _append(self, arr: np.ndarray) -> None:
        start = self._corpus.n
        self._corpus.extend(arr)
        if arr.shape[0] == 1:
            t = int(arr[0])
            g = self._where.get(t)
            if g is None:
                g = self._where[t] = _Grow(4)
            g.append(start)
            return
        order = np.argsort(arr, kind="stable")
        toks = arr[order]
        cuts = np.flatnonzero(np.diff(toks)) + 1
        for grp in np.split(order, cuts):
            t = int(arr[grp[0]])
            g = self._where.get(t)
            if g is None:
                g = self._where[t] = _Grow(max(4, grp.shape[0]))
            g.extend((grp + start).astype(np.int32))

    def _append_sentinel(self) -> None:
        self._corpus.append(SENTINEL)

    def evict(self, max_tokens: int | None = None, max_sequences: int | None = None) -> int:
        """Drop the oldest sequences until the bounds hold; returns how many were dropped."""
        lengths = list(self.seq_lengths)
        drop = 0
        total = sum(lengths)
        while lengths[drop:] and ((max_tokens is not None and total > max_tokens) or
                                  (max_sequences is not None and len(lengths) - drop > max_sequences)):
            total -= lengths[drop]
            drop += 1
        if drop == 0:
            return 0
        seqs = list(self.sequences())[drop:]
        was_open = self._open
        self.__init__(self.max_depth)
        for i, s in enumerate(seqs):
            if was_open and i == len(seqs) - 1:
                self.open_sequence(s)
            else:
                self.add_sequence(s)
        return drop

    def sequences(self) -> Iterator[np.ndarray]:
        c = self._corpus.view()
        pos = 0
        for n in self.seq_lengths:
            yield c[pos:pos + n]
            pos += n + 1

    @property
    def corpus(self) -> np.ndarray:
        return self._corpus.view()

    # -- searching ------------------------------------------------------------
    def matches(self, context: Sequence[int], max_occurrences: int = 256) -> Iterator[tuple[int, np.ndarray]]:
        """For p = 1, 2, ...: the positions right after each occurrence of the last p context tokens.

        Yields ``(p, positions)`` only for the longest p of each distinct set of occurrences (a
        longer pattern with the same occurrences gives the same continuations), most recent
        occurrences kept when there are more than ``max_occurrences``.
        """
        if not context:
            return
        g = self._where.get(int(context[-1]))
        if g is None:
            return
        corpus = self._corpus.view()
        n = corpus.shape[0]
        cand = g.view()
        cand = cand[cand + 1 < n]  # an occurrence with something after it
        # the current request's own last token has nothing after it yet and drops out here
        p = 1
        limit = min(self.max_depth, len(context))
        pending = None
        while cand.size:
            if pending is not None and pending[1].size != cand.size:
                yield pending
            pending = (p, cand[-max_occurrences:] + 1)
            if p >= limit:
                break
            p += 1
            prev = cand - (p - 1)
            ok = prev >= 0
            cand = cand[ok]
            prev = prev[ok]
            cand = cand[corpus[prev] == context[-p]]
        if pending is not None:
            yield pending
