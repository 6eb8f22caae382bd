"""A suffix index over token sequences.

The suffix tree of the paper, kept implicitly: the corpus of tokens plus, for every token, the
sorted positions where it occurs. The node for a pattern is the set of positions right after its
occurrences, its count is the size of that set, and its children are those positions grouped by the
token found there -- the same counts a depth-limited suffix tree stores, without materialising
the tree (a million tokens take about 8-10 bytes each).

Sequences are separated by a sentinel, so no match crosses from one request into the next.
The index is append-only; old sequences are evicted first-in first-out by rebuilding from the kept
ones in one vectorised pass (``TokenIndex.evict``), which is cheap next to how rarely it happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

SENTINEL = -1


class _Grow:
    """A growable int32 array."""

    __slots__ = ("buf", "n")

    def __init__(self, cap: int = 16, data: np.ndarray | None = None):
        if data is not None:
            self.buf = np.ascontiguousarray(data, dtype=np.int32)
            self.n = self.buf.shape[0]
        else:
            self.buf = np.empty(cap, dtype=np.int32)
            self.n = 0

    def append(self, v: int) -> None:
        if self.n == self.buf.shape[0]:
            nb = np.empty(max(4, 2 * self.buf.shape[0]), dtype=np.int32)
            nb[: self.n] = self.buf[: self.n]
            self.buf = nb
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
    """Token sequences, searchable by suffix. ``max_depth`` bounds the match length and the depth of a
    speculation below a match (each counted separately)."""

    def __init__(self, max_depth: int = 64):
        if max_depth < 1:
            raise ValueError("max_depth must be >= 1")
        self.max_depth = max_depth
        self._corpus = _Grow(1024)
        self._where: dict[int, _Grow] = {}
        self.seq_lengths: list[int] = []  # tokens per sequence, oldest first
        self._open = False  # the last sequence may still grow (per-request index)
        self._n_tokens = 0

    @classmethod
    def from_sequences(cls, seqs: Iterable[Sequence[int]], max_depth: int = 64,
                       open_last: bool = False) -> "TokenIndex":
        """Build an index over ``seqs`` in one vectorised pass (loading a cache, evicting)."""
        index = cls(max_depth)
        arrs = [np.asarray(s, dtype=np.int32).reshape(-1) for s in seqs]
        if not arrs:
            return index
        parts = []
        for i, a in enumerate(arrs):
            parts.append(a)
            if not (open_last and i == len(arrs) - 1):
                parts.append(np.array([SENTINEL], dtype=np.int32))
        corpus = np.concatenate(parts)
        index._corpus = _Grow(data=np.concatenate([corpus, np.empty(max(1024, corpus.shape[0] // 4), np.int32)]))
        index._corpus.n = corpus.shape[0]
        pos = np.flatnonzero(corpus != SENTINEL)
        toks = corpus[pos]
        order = np.argsort(toks, kind="stable")
        toks, pos = toks[order], pos[order]
        cuts = np.flatnonzero(np.diff(toks)) + 1
        starts = np.concatenate([[0], cuts])
        for s, grp in zip(starts.tolist(), np.split(pos, cuts)):
            if grp.size:
                index._where[int(toks[s])] = _Grow(data=grp)
        index.seq_lengths = [int(a.shape[0]) for a in arrs]
        index._n_tokens = sum(index.seq_lengths)
        index._open = open_last
        return index

    # -- building -------------------------------------------------------------
    def __len__(self) -> int:
        return self._corpus.n

    @property
    def n_tokens(self) -> int:
        return self._n_tokens

    @property
    def n_sequences(self) -> int:
        return len(self.seq_lengths)

    def add_sequence(self, tokens: Sequence[int]) -> None:
        """Append a finished sequence (an earlier request's output)."""
        self.close()
        arr = np.asarray(tokens, dtype=np.int32).reshape(-1)
        self._append(arr)
        self._append_sentinel()
        self.seq_lengths.append(int(arr.shape[0]))
        self._n_tokens += int(arr.shape[0])

    def open_sequence(self, tokens: Sequence[int] = ()) -> None:
        """Start a sequence that grows token by token (the current request)."""
        self.close()
        self.seq_lengths.append(0)
        self._open = True
        self.extend(tokens)

    def extend(self, tokens: Iterable[int]) -> None:
        if not self._open:
            self.open_sequence()
        arr = np.asarray(tokens if isinstance(tokens, (list, tuple, np.ndarray)) else list(tokens),
                         dtype=np.int32).reshape(-1)
        if arr.size:
            self._append(arr)
            self.seq_lengths[-1] += int(arr.shape[0])
            self._n_tokens += int(arr.shape[0])

    def close(self) -> None:
        if self._open:
            self._append_sentinel()
            self._open = False

    def _append(self, arr: np.ndarray) -> None:
        if (arr < 0).any():
            raise ValueError("token ids must be >= 0")
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
            if not grp.size:
                continue
            t = int(arr[grp[0]])
            g = self._where.get(t)
            if g is None:
                g = self._where[t] = _Grow(max(4, grp.shape[0]))
            g.extend((grp + start).astype(np.int32))

    def _append_sentinel(self) -> None:
        self._corpus.append(SENTINEL)

    def evict(self, max_tokens: int | None = None, max_sequences: int | None = None) -> int:
        """Drop the oldest sequences until the bounds hold; returns how many were dropped. An open
        (growing) last sequence is never dropped."""
        lengths = self.seq_lengths
        keep_last = 1 if self._open else 0
        drop = 0
        total = self._n_tokens
        while drop < len(lengths) - keep_last and (
                (max_tokens is not None and total > max_tokens) or
                (max_sequences is not None and len(lengths) - drop > max_sequences)):
            total -= lengths[drop]
            drop += 1
        if drop == 0:
            return 0
        seqs = [s.copy() for s in list(self.sequences())[drop:]]
        rebuilt = TokenIndex.from_sequences(seqs, self.max_depth, open_last=self._open)
        self.__dict__.update(rebuilt.__dict__)
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

    def nbytes(self) -> int:
        """Memory held by the index's arrays (slack included; Python object overhead estimated)."""
        return (self._corpus.buf.nbytes + sum(g.buf.nbytes for g in self._where.values())
                + 200 * len(self._where) + 8 * len(self.seq_lengths))

    # -- searching ------------------------------------------------------------
    def matches(self, context: Sequence[int], max_occurrences: int = 256) -> Iterator[tuple[int, np.ndarray, int]]:
        """For p = 1, 2, ...: the positions right after each occurrence of the last p context tokens.

        Yields ``(p, positions, count)`` only for the longest p of each distinct set of occurrences (a
        longer pattern with the same occurrences has the same continuations, and the longer match
        earns the larger speculation budget). ``count`` is the number of occurrences; when it exceeds
        ``max_occurrences`` only the most recent ones are returned. An occurrence at the very end of
        the corpus (nothing after it yet) is not counted.
        """
        if not len(context):
            return
        g = self._where.get(int(context[-1]))
        if g is None:
            return
        corpus = self._corpus.view()
        n = corpus.shape[0]
        cand = g.view()
        if cand.size and cand[-1] + 1 >= n:  # positions are sorted: only the last can be the corpus end
            cand = cand[:-1]
        p = 1
        limit = min(self.max_depth, len(context))
        pending = None
        while cand.size:
            if pending is not None and pending[2] != cand.size:
                yield pending
            pending = (p, cand[-max_occurrences:] + 1, int(cand.size))
            if p >= limit:
                break
            p += 1
            prev = cand - (p - 1)
            if prev.size and prev[0] < 0:
                ok = prev >= 0
                cand, prev = cand[ok], prev[ok]
            cand = cand[corpus[prev] == context[-p]]
        if pending is not None:
            yield pending
