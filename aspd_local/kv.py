"""Sequence and KV-cache bookkeeping: which token sits at which position in which sequence.

The engine never calls llama.cpp's memory functions directly; it asks the book, which keeps a
mirror of the cache: the committed stream of sequence 0 (the conversation) in stream order with
each token's position, and the pending tokens of every forked sequence (branches).
"""

from __future__ import annotations

from dataclasses import dataclass

from .llama.context import Context


@dataclass(frozen=True)
class Mark:
    """A point in sequence 0 to roll back to."""

    n_tokens: int


class KvBook:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.tokens: list[int] = []  # sequence 0, stream order
        self.positions: list[int] = []
        self._pending: dict[int, tuple[list[int], list[int]]] = {}  # seq -> (tokens, positions)
        self._free_seqs = list(range(ctx.n_seq_max - 1, 0, -1))
        self._drafts: dict[int, int] = {}  # draft sequence id -> the sequence it was forked from
        self.draft_cells = 0  # cells held only by draft sequences while a draft tree is verified

    # -- capacity -------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return len(self.tokens) + sum(len(t) for t, _ in self._pending.values()) + self.draft_cells

    @property
    def free_cells(self) -> int:
        return self.ctx.n_ctx - self.n_cells

    @property
    def next_pos(self) -> int:
        return (max(self.positions) + 1) if self.positions else 0

    @property
    def free_seq_count(self) -> int:
        return len(self._free_seqs)

    # -- sequence 0 -----------------------------------------------------------
    def commit(self, token: int, pos: int) -> None:
        """Record a token decoded into sequence 0."""
        self.tokens.append(token)
        self.positions.append(pos)

    def commit_many(self, tokens, positions) -> None:
        self.tokens.extend(tokens)
        self.positions.extend(positions)

    def mark(self) -> Mark:
        return Mark(len(self.tokens))

    def safe_prefix(self, n: int) -> int:
        """The largest m <= n such that every token after the first m has a larger position than all before.

        Cutting there removes a clean tail by position (never half a parallel block).
        """
        pos = self.positions
        n = min(n, len(pos))
        suffix_min = [1 << 30] * (len(pos) + 1)
        for i in range(len(pos) - 1, -1, -1):
            suffix_min[i] = min(pos[i], suffix_min[i + 1])
        prefix_max = -1
        best = 0
        for m in range(1, n + 1):
            prefix_max = max(prefix_max, pos[m - 1])
            if suffix_min[m] > prefix_max:
                best = m
        return best

    def rollback(self, mark: Mark | int) -> None:
        """Drop every branch sequence and every token of sequence 0 after ``mark``."""
        n = mark.n_tokens if isinstance(mark, Mark) else int(mark)
        self.drop_drafts()
        for seq in list(self._pending):
            self.drop(seq)
        if n >= len(self.tokens):
            return
        if self.safe_prefix(n) != n:
            raise ValueError(f"cannot roll back to token {n}: it is inside a parallel block")
        cut = min(self.positions[n:])
        if not self.ctx.seq_rm(0, cut, -1):
            raise RuntimeError("llama.cpp refused to remove the tail of sequence 0")
        del self.tokens[n:]
        del self.positions[n:]

    def clear(self) -> None:
        self.ctx.clear()
        self.tokens.clear()
        self.positions.clear()
        self._pending.clear()
        self._drafts.clear()
        self._free_seqs = list(range(self.ctx.n_seq_max - 1, 0, -1))
        self.draft_cells = 0

    # -- branch sequences -----------------------------------------------------
    def fork(self) -> int:
        """A new sequence id that shares every cell of sequence 0 (no copy in a unified cache)."""
        if not self._free_seqs:
            raise RuntimeError("no free sequence id left")
        seq = self._free_seqs.pop()
        self.ctx.seq_cp(0, seq, -1, -1)
        self._pending[seq] = ([], [])
        return seq

    def extend(self, seq: int, tokens, positions) -> None:
        """Record tokens decoded into ``seq`` (sequence 0 commits directly)."""
        if seq == 0:
            self.commit_many(tokens, positions)
            return
        t, p = self._pending[seq]
        t.extend(tokens)
        p.extend(positions)

    def pending(self, seq: int) -> list[int]:
        return self._pending[seq][0] if seq else []

    def join(self, seqs: list[int]) -> None:
        """Merge branch sequences into sequence 0, in stream order ``seqs`` (0 may be among them).

        Sequence 0's own branch tokens were committed as they were decoded; the others are moved
        over here, so the committed stream reads branch 0, branch 1, ... as in training.
        """
        for seq in seqs:
            if seq == 0:
                continue
            t, p = self._pending.pop(seq)
            self.ctx.seq_cp(seq, 0, -1, -1)
            self.ctx.seq_rm(seq, -1, -1)
            self.commit_many(t, p)
            self._free_seqs.append(seq)

    def drop(self, seq: int) -> None:
        """Forget a branch sequence and its cells."""
        self._pending.pop(seq, None)
        self.ctx.seq_rm(seq, -1, -1)
        if seq not in self._free_seqs:
            self._free_seqs.append(seq)

    # -- draft trees (speculation) ---------------------------------------------
    # A draft tree is verified in sequence ids of its own, one per leaf path, forked from the sequence
    # it continues (0 in serial text, a branch's id inside a block) and drawn from the same pool as the
    # branches. After verification the accepted path's cells join that sequence and every draft id goes
    # back to the pool; the cells of rejected nodes, held by draft ids only, are freed by llama.cpp.
    def open_draft(self, n_paths: int, src: int = 0) -> list[int]:
        """Sequence ids for the leaf paths of a draft tree, each sharing every cell of ``src``."""
        if n_paths > len(self._free_seqs):
            raise RuntimeError(f"{n_paths} draft paths but only {len(self._free_seqs)} free sequence ids")
        seqs = []
        for _ in range(n_paths):
            seq = self._free_seqs.pop()
            self.ctx.seq_cp(src, seq, -1, -1)
            self._drafts[seq] = src
            seqs.append(seq)
        return seqs

    def close_draft(self, seqs: list[int], keep: int | None, tokens: list[int], positions: list[int]) -> None:
        """Keep the accepted draft tokens (their cells, found in draft sequence ``keep``) in the sequence
        the draft was forked from, and free every other draft cell and sequence id."""
        if keep is not None and tokens:
            dst = self._drafts[keep]
            self.ctx.seq_cp(keep, dst, positions[0], positions[-1] + 1)
            self.extend(dst, tokens, positions)
        for s in seqs:
            self._drop_draft(s)
        if not self._drafts:
            self.draft_cells = 0

    def drop_drafts(self) -> None:
        """Forget every open draft (cancellation, a failed decode)."""
        for s in list(self._drafts):
            self._drop_draft(s)
        self.draft_cells = 0

    def _drop_draft(self, seq: int) -> None:
        self._drafts.pop(seq, None)
        self.ctx.seq_rm(seq, -1, -1)
        if seq not in self._free_seqs:
            self._free_seqs.append(seq)

    @property
    def open_drafts(self) -> int:
        return len(self._drafts)

    # -- checking -------------------------------------------------------------
    def problems(self) -> list[str]:
        """Differences between this mirror and llama.cpp's cache (empty when they agree)."""
        out = []
        ctx = self.ctx
        exp0 = (min(self.positions), max(self.positions)) if self.positions else (-1, -1)
        got0 = (ctx.seq_pos_min(0), ctx.seq_pos_max(0))
        if got0 != exp0:
            out.append(f"sequence 0 spans positions {got0}, expected {exp0}")
        for seq in range(1, ctx.n_seq_max):
            got = (ctx.seq_pos_min(seq), ctx.seq_pos_max(seq))
            if seq in self._pending:
                pos = self.positions + self._pending[seq][1]
                exp = (min(pos), max(pos)) if pos else (-1, -1)
            else:
                exp = (-1, -1)
            if got != exp:
                out.append(f"sequence {seq} spans positions {got}, expected {exp}")
        return out
