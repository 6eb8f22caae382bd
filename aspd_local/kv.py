"""KV-cache bookkeeping for many requests at once: which token sits at which position in which sequence.

llama.cpp's unified cache is a set of cells; each cell holds one token at one position and belongs to a
set of sequence ids, and it is freed when that set becomes empty. The engine never calls llama.cpp's
memory functions directly. It goes through :class:`KvCache`, which mirrors every sequence (its cells in
stream order, each with its token and position) and counts the sequences that hold each cell. So the
number of free cells is exact even when sequences share cells (forked branches, draft trees, prefixes
copied from cached conversations).

A request sees the cache through a :class:`Lane` (its home sequence, forks, reservation and batch part).
"""

from __future__ import annotations

from .llama.batch import StepPart
from .llama.context import Context


class Line:
    """One sequence: its own cells in stream order, after ``n_parent`` cells it shares with ``parent``.

    A fork (a branch, a draft path) reads its parent's cells without holding references of its own: the
    parent outlives it (a lane drops its forks before it changes its home sequence)."""

    __slots__ = ("tokens", "positions", "cells", "parent", "n_parent")

    def __init__(self, parent: "Line | None" = None, n_parent: int = 0):
        self.tokens: list[int] = []
        self.positions: list[int] = []
        self.cells: list[int] = []
        self.parent, self.n_parent = parent, n_parent

    def span(self) -> tuple[int, int]:
        """(lowest, highest) position, (-1, -1) when empty (what llama.cpp reports)."""
        pos = self.positions + (self.parent.all_positions()[:self.n_parent] if self.parent is not None else [])
        return (min(pos), max(pos)) if pos else (-1, -1)

    def all_positions(self) -> list[int]:
        head = self.parent.all_positions()[:self.n_parent] if self.parent is not None else []
        return head + self.positions


class KvCache:
    """The mirror of llama.cpp's cache: sequence ids, lines and cell references."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.lines: dict[int, Line] = {}
        self.refs: dict[int, int] = {}  # cell -> sequences holding it (forks excepted)
        self._next_cell = 0
        self._free_seqs = list(range(ctx.n_seq_max - 1, -1, -1))
        self.lanes: list[Lane] = []  # running requests' lanes, each with its reservation

    # -- capacity -------------------------------------------------------------
    @property
    def used_cells(self) -> int:
        return len(self.refs)

    @property
    def free_cells(self) -> int:
        """Cells no sequence holds."""
        return self.ctx.n_ctx - len(self.refs)

    @property
    def unclaimed(self) -> int:
        """Free cells less what running requests have reserved and not filled yet."""
        return self.free_cells - sum(lane.unfilled for lane in self.lanes)

    @property
    def free_seq_count(self) -> int:
        return len(self._free_seqs)

    # -- sequences ------------------------------------------------------------
    def alloc(self, parent: int | None = None) -> int:
        """A new sequence id: empty, or a fork that shares every cell of ``parent``."""
        if not self._free_seqs:
            raise RuntimeError("no free sequence id left")
        seq = self._free_seqs.pop()
        if parent is None:
            self.lines[seq] = Line()
        else:
            src = self.lines[parent]
            self.ctx.seq_cp(parent, seq, -1, -1)
            self.lines[seq] = Line(src, src.n_parent + len(src.cells))
        return seq

    def release(self, seq: int) -> None:
        """Forget a sequence and every cell only it held (the mirror forgets it even when llama.cpp fails)."""
        line = self.lines.pop(seq, None)
        if line is None:
            return
        try:
            self.ctx.seq_rm(seq, -1, -1)
        finally:
            self._unref(line.cells)
            self._free_seqs.append(seq)

    def copy_prefix(self, src: int, dst: int, n: int) -> None:
        """Give the empty sequence ``dst`` the first ``n`` cells of ``src`` (a clean cut: every later cell of
        ``src`` has a higher position), with references of its own (``src`` may go first)."""
        s, d = self.lines[src], self.lines[dst]
        if n <= 0:
            return
        end = min(s.positions[n:]) if n < len(s.positions) else max(s.positions) + 1
        self.ctx.seq_cp(src, dst, 0, end)
        d.tokens.extend(s.tokens[:n])
        d.positions.extend(s.positions[:n])
        d.cells.extend(s.cells[:n])
        refs = self.refs
        for c in s.cells[:n]:
            refs[c] += 1

    def truncate(self, seq: int, n: int) -> None:
        """Keep the first ``n`` cells of ``seq`` (a clean cut, see ``safe_prefix``)."""
        line = self.lines[seq]
        if n >= len(line.cells):
            return
        cut = min(line.positions[n:])
        if not self.ctx.seq_rm(seq, cut, -1):
            raise RuntimeError(f"llama.cpp refused to remove the tail of sequence {seq}")
        self._unref(line.cells[n:])
        del line.tokens[n:], line.positions[n:], line.cells[n:]

    def take(self, src: int, dst: int, p0: int, p1: int) -> None:
        """Copy ``src``'s own cells with positions in [p0, p1) into ``dst``, after its own."""
        s, d = self.lines[src], self.lines[dst]
        self.ctx.seq_cp(src, dst, p0, p1)
        refs = self.refs
        for t, p, c in zip(s.tokens, s.positions, s.cells):
            if p0 <= p < p1:
                d.tokens.append(t)
                d.positions.append(p)
                d.cells.append(c)
                refs[c] += 1

    def record(self, part: StepPart) -> None:
        """A decoded part's rows are now cells of the sequences they named."""
        lines, refs = self.lines, self.refs
        for tok, pos, seqs in zip(part.tokens, part.positions, part.seqs):
            c = self._next_cell
            self._next_cell += 1
            refs[c] = len(seqs)
            for s in seqs:
                line = lines[s]
                line.tokens.append(tok)
                line.positions.append(pos)
                line.cells.append(c)

    def _unref(self, cells) -> None:
        refs = self.refs
        for c in cells:
            k = refs[c] - 1
            if k:
                refs[c] = k
            else:
                del refs[c]

    def clear(self) -> None:
        """Empty the whole cache (no sequence may be in use)."""
        self.ctx.clear()
        self.lines.clear()
        self.refs.clear()
        self._free_seqs = list(range(self.ctx.n_seq_max - 1, -1, -1))

    # -- checking -------------------------------------------------------------
    def problems(self) -> list[str]:
        """Differences between this mirror and llama.cpp's cache (empty when they agree)."""
        out = []
        for seq in range(self.ctx.n_seq_max):
            got = (self.ctx.seq_pos_min(seq), self.ctx.seq_pos_max(seq))
            line = self.lines.get(seq)
            exp = line.span() if line is not None else (-1, -1)
            if got != exp:
                out.append(f"sequence {seq} spans positions {got}, expected {exp}")
        if len(self._free_seqs) + len(self.lines) != self.ctx.n_seq_max:
            out.append(f"{self.ctx.n_seq_max - len(self._free_seqs) - len(self.lines)} sequence ids are lost")
        held = set()
        for line in self.lines.values():
            held.update(line.cells)
        if held != set(self.refs):
            out.append(f"{len(set(self.refs) - held)} cells are counted but held by no sequence")
        return out


def safe_prefix(positions: list[int], n: int) -> int:
    """The largest m <= n such that every token after the first m has a larger position than all before.

    Cutting there removes a clean tail by position (never half a parallel block)."""
    n = min(n, len(positions))
    suffix_min = [1 << 30] * (len(positions) + 1)
    for i in range(len(positions) - 1, -1, -1):
        suffix_min[i] = min(positions[i], suffix_min[i + 1])
    prefix_max, best = -1, 0
    for m in range(1, n + 1):
        prefix_max = max(prefix_max, positions[m - 1])
        if suffix_min[m] > prefix_max:
            best = m
    return best


class Lane:
    """One request's view of the cache: its home sequence, its forks (branches and draft paths, at most
    ``quota`` at once), its reservation (``reserve`` cells that no other request fills), and its part of
    the batch being assembled."""

    def __init__(self, cache: KvCache, home: int, quota: int, reserve: int = 0):
        self.cache, self.ctx, self.home, self.quota, self.reserve = cache, cache.ctx, home, quota, reserve
        self.part = StepPart()
        self._forks: set[int] = set()
        self._drafts: dict[int, int] = {}  # draft sequence id -> the sequence it was forked from
        cache.lanes.append(self)

    @property
    def held(self) -> int:
        """Cells of its home sequence and forks (draft cells are temporary and not counted)."""
        lines = self.cache.lines
        home = lines.get(self.home)
        return (len(home.cells) if home is not None else 0) + sum(len(lines[q].cells) for q in self._forks
                                                                   if q in lines)

    @property
    def unfilled(self) -> int:
        """Reserved cells not filled yet."""
        return max(0, self.reserve - self.held)

    @property
    def seqs(self) -> set[int]:
        return {self.home, *self._forks, *self._drafts}

    def close(self, keep_home: bool) -> None:
        """Release every fork and draft sequence (and the home sequence unless ``keep_home``), each one
        even when another fails, and give up the reservation; raises the first failure afterwards."""
        first: BaseException | None = None
        seqs = [*self._drafts, *self._forks] + ([] if keep_home else [self.home])
        self._drafts, self._forks = {}, set()
        for seq in seqs:
            try:
                self.cache.release(seq)
            except BaseException as e:  # noqa: BLE001 - go on freeing the rest
                first = first or e
        if self in self.cache.lanes:
            self.cache.lanes.remove(self)
        self.reserve = 0
        if first is not None:
            raise first

    # -- the home sequence ----------------------------------------------------
    @property
    def line(self) -> Line:
        return self.cache.lines[self.home]

    @property
    def tokens(self) -> list[int]:
        return self.line.tokens

    @property
    def positions(self) -> list[int]:
        return self.line.positions

    @property
    def next_pos(self) -> int:
        pos = self.line.positions
        return (max(pos) + 1) if pos else 0

    @property
    def free_cells(self) -> int:
        """Cells this lane may still fill: what it reserved and has not filled, and what nobody reserved."""
        return self.unfilled + self.cache.unclaimed - self.part.n

    @property
    def free_seq_count(self) -> int:
        return max(0, min(self.quota - len(self._forks) - len(self._drafts), self.cache.free_seq_count))

    def safe_prefix(self, n: int) -> int:
        return safe_prefix(self.positions, n)

    def rollback(self, n: int) -> None:
        """Drop every fork and every token of the home sequence after its first ``n``."""
        self.drop_drafts()
        for seq in list(self._forks):
            self.drop(seq)
        if n >= len(self.tokens):
            return
        if self.safe_prefix(n) != n:
            raise ValueError(f"cannot roll back to token {n}: it is inside a parallel block")
        self.cache.truncate(self.home, n)

    # -- branch sequences -----------------------------------------------------
    def fork(self) -> int:
        """A new sequence id that shares every cell of the home sequence."""
        if self.free_seq_count < 1:
            raise RuntimeError("no free sequence id left")
        seq = self.cache.alloc(self.home)
        self._forks.add(seq)
        return seq

    def join(self, seqs: list[int]) -> None:
        """Merge forks into the home sequence in stream order ``seqs`` (the home may be among them: its
        tokens are in place already), so the home reads branch 0, branch 1, ... as in training."""
        for seq in seqs:
            if seq == self.home:
                continue
            src = self.cache.lines[seq]
            if src.positions:  # (a branch cut before its first token has nothing to give)
                self.cache.take(seq, self.home, min(src.positions), max(src.positions) + 1)
            self.drop(seq)

    def drop(self, seq: int) -> None:
        """Forget a fork and its cells."""
        self._forks.discard(seq)
        self.cache.release(seq)

    # -- draft trees (speculation) ---------------------------------------------
    # A draft tree is verified in sequence ids of its own, one per leaf path, forked from the sequence
    # it continues (the home in serial text, a branch's id inside a block). After verification the
    # accepted path's cells join that sequence and every draft id is released; the cells of rejected
    # nodes, held by draft ids only, are freed by llama.cpp.
    def open_draft(self, n_paths: int, src: int) -> list[int]:
        if n_paths > self.free_seq_count:
            raise RuntimeError(f"{n_paths} draft paths but only {self.free_seq_count} free sequence ids")
        seqs = []
        for _ in range(n_paths):
            seq = self.cache.alloc(src)
            self._drafts[seq] = src
            seqs.append(seq)
        return seqs

    def close_draft(self, seqs: list[int], keep: int | None, positions: list[int]) -> None:
        """Keep the accepted draft tokens (found in draft sequence ``keep`` at ``positions``) in the
        sequence the draft was forked from, and free every other draft cell and sequence id."""
        if keep is not None and positions:
            self.cache.take(keep, self._drafts[keep], positions[0], positions[-1] + 1)
        for s in seqs:
            self._drafts.pop(s, None)
            self.cache.release(s)

    def drop_drafts(self) -> None:
        """Forget every open draft (cancellation, a failed decode)."""
        for s in list(self._drafts):
            self._drafts.pop(s)
            self.cache.release(s)

    @property
    def open_drafts(self) -> int:
        return len(self._drafts)

    # -- the batch ------------------------------------------------------------
    def logits(self, row: int):
        """Logits of row ``row`` of this lane's part of the last decode (valid until the next one)."""
        return self.ctx.logits(self.part.offset + row)
