"""One stream loop: serial text and the branches of a block advance through the same step.

A :class:`Stream` is an answer's serial text or one branch of a block. :meth:`StreamLoop.advance` decodes
the next token of every stream it is given in one step: it asks the scheduler for one row per stream and
offers each plain stream's draft tree; after the decode, each stream takes its token and what its draft
verified, and streams its text. What differs between serial text and a branch is small and stated on the
stream: where its next position is, which of its tokens need no logits, how far a draft may reach (the
answer's budget or the branch's cap), which tokens are its content, and which event carries its text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..aspd.grammar import Constraint, Grammar, Phase
from ..aspd.layout import branch_ending
from ..events import BranchDelta, BranchEnd, SerialDelta, Stats
from ..kv import Lane
from ..sampling import StreamInfo, StreamSampler
from ..step import Ask, DraftOffer, row
from ..suffix.index import TokenIndex
from .speculative import DraftRequest, PendingDraft, Speculator, accept_walk, settle
from .stops import StopFilter, cut_at_stop
from .text import TextStream

_MAX_NEW = 256  # tokens a stream's earlier proposals are followed along, at most (they die within max_depth)


@dataclass
class Stream:
    """One stream of tokens: an answer's serial text, or one branch of a block."""

    seq: int
    sampler: StreamSampler
    history: list[int]  # what the repetition penalty looks at
    info: StreamInfo  # what logits processors are told (``info.tokens``: the content so far)
    text: TextStream
    phase: Phase
    tokens: list[int]  # decoded: the serial stream's is its lane's home sequence
    head: list[int] = field(default_factory=list)  # tokens before the stream's own, for draft contexts
    index: int | None = None  # branch number (None: serial text)
    base_pos: int = 0  # branch: position of its first token
    cap: int = 0  # branch: content tokens at most
    prefix: list[int] = field(default_factory=list)  # branch: <|branch|> + tokens of (title + sep.)
    margins: list[float | None] = field(default_factory=list)  # branch: per decoded token (None when forced)
    next_token: int | None = None
    margin: float | None = None
    forced: bool = False  # next_token was not sampled (no draft rides on it)
    row: int = -1  # row (in the lane's part) of the logits for its next token
    reason: str = ""  # branch: why it closed
    ended: bool = False  # branch: closed (its events are out)
    carry: tuple[int, float | None] | None = None  # sampled while verifying a draft, not yet decoded
    own: TokenIndex | None = None  # the branch's own tokens, searched for drafts (speculation only)
    spec_root: int | None = None  # index in ``tokens`` of the root of the stream's last draft request
    stops: StopFilter | None = None  # its text up to a stop string
    taken: list[int] = field(default_factory=list)  # the tokens the last step gave it

    @property
    def content(self) -> list[int]:
        return self.info.tokens

    @property
    def is_branch(self) -> bool:
        return self.index is not None

    @property
    def visible_text(self) -> str:
        """Its text up to a stop string."""
        return self.text.text if self.stops is None else cut_at_stop(self.text.text, self.stops.stop)[0]


class StreamLoop:
    """The step every stream goes through. ``room(s)``: how many more content tokens stream ``s`` may
    take (the answer's budget for serial text, the cap for a branch); ``note(token, margin)``: a serial
    token joins the answer; ``constraint(s, pending)``: what ``s`` may sample, ``pending`` tokens after its
    counted ones (a draft walk's)."""

    def __init__(self, lane: Lane, grammar: Grammar, piece, stats: Stats, record_margins: bool,
                 speculator: Speculator | None, room: Callable[[Stream], int],
                 note: Callable[[int, float | None], None],
                 block_no: Callable[[], int], constraint: Callable[[Stream, int], Constraint]):
        self.lane, self.grammar, self.piece, self.stats = lane, grammar, piece, stats
        self.record_margins, self.speculator = record_margins, speculator
        self.room, self.note, self.block_no, self.constraint = room, note, block_no, constraint
        a = grammar.aspd if grammar.structured else None  # (no block ever opens in plain decoding)
        self.close_id, self.para_open_id = (a.branch_close, a.para_open) if a else (None, None)

    # -- choosing -------------------------------------------------------------
    def sample(self, s: Stream, pending: int = 0) -> tuple[int, float | None]:
        tok = s.sampler.sample(self.lane.logits(s.row), self.constraint(s, pending), s.history, s.info,
                               want_margin=self.record_margins)
        self.stats.sampled_tokens += 1
        return tok, (s.sampler.last_margin if self.record_margins else None)

    def is_plain(self, s: Stream, tok: int) -> bool:
        """Whether ``tok`` is ordinary content of ``s`` (a draft walk may accept it and go on)."""
        if self.grammar.is_eog(tok):
            return False
        if s.is_branch:
            return tok != self.close_id
        return self.grammar.aspd is None or tok not in self.grammar.aspd.ids

    # -- one step -------------------------------------------------------------
    def advance(self, streams: list[Stream]) -> Iterator:
        """Decode every stream's ``next_token`` (with a draft where the plan grants one) in one step, then
        let each take it and what its draft verified (``s.taken``), streaming their text."""
        ask = Ask()
        for s in streams:
            pos = self.lane.next_pos if not s.is_branch else s.base_pos + len(s.tokens)
            logits = s.next_token not in (self.close_id if s.is_branch else self.para_open_id,)
            ask.rows.append(row(s.next_token, pos, s.seq, logits))
        owners = self._offer(streams, ask)
        yield from self.decode(ask)
        pend: list[PendingDraft | None] = [None] * len(streams)
        for j, k in enumerate(owners):
            pend[k] = ask.pending[j]
        for k, s in enumerate(streams):
            s.row = ask.at[k]
            yield from self._take(s, pend[k])

    def decode(self, ask: Ask) -> Iterator:
        """Hand ``ask`` to the scheduler; after the decode its rows are read through it."""
        yield ask
        part, st = self.lane.part, self.stats
        st.decode_s += part.decode_s
        st.decode_calls += 1
        st.batch_sizes[part.batch_n] = st.batch_sizes.get(part.batch_n, 0) + 1

    def _take(self, s: Stream, d: PendingDraft | None) -> Iterator:
        t = s.next_token
        s.taken = [t]
        if s.is_branch:
            s.tokens.append(t)
            s.margins.append(s.margin)
        else:
            self.note(t, s.margin)
        s.history.append(t)
        if s.is_branch and t == self.close_id:
            return
        s.info.tokens.append(t)
        if s.own is not None:
            s.own.extend((t,))
        if d is not None:
            s.taken += self._verify(s, d)
        if s.phase in (Phase.SERIAL, Phase.BRANCH) and self.is_plain(s, t):
            for tok in s.taken:
                delta = s.text.push(tok)
                if s.stops is not None:
                    delta = s.stops.feed(delta)
                if delta:
                    yield BranchDelta(self.block_no(), s.index, delta) if s.is_branch else SerialDelta(delta)

    def end_branch(self, b: Stream, block: int, last: bool) -> Iterator:
        """A branch closed: the rest of its text, the line ending a joined block needs, and its BranchEnd."""
        b.ended = True
        tail = b.text.flush()
        if b.stops is not None:
            tail = b.stops.feed(tail) + b.stops.flush()
        if tail:
            yield BranchDelta(block, b.index, tail)
        end = "" if b.stops is not None and b.stops.stopped else branch_ending(b.text.text, last)
        if end:
            # a branch cut short (its budget, the context) still ends its line, and a paragraph before a
            # sibling ends with a blank line: the joined block is well formed (docs/format.md, rendering);
            # display only, no token is added
            b.text.parts.append(end.encode())
            yield BranchDelta(block, b.index, end)
        yield BranchEnd(block, b.index, b.visible_text, b.reason)

    # -- drafts ---------------------------------------------------------------
    def _offer(self, streams: list[Stream], ask: Ask) -> list[int]:
        """Offer each plain stream's draft tree to the step plan; returns the stream of each offer."""
        spec = self.speculator
        owners: list[int] = []
        if spec is None:
            return owners
        t0 = time.perf_counter()
        depth = spec.proposer.max_depth
        for k, s in enumerate(streams):
            tok = s.next_token
            if s.forced or s.phase not in (Phase.SERIAL, Phase.BRANCH) or not self.is_plain(s, tok):
                continue
            room = self.room(s) - 1  # the root is content too
            if room <= 0:
                continue
            tail = s.tokens[-depth:]
            context = (s.head[-(depth - len(tail)):] if len(tail) < depth else []) + tail + [tok]
            gap = s.tokens[s.spec_root + 1:s.spec_root + 1 + _MAX_NEW] if s.spec_root is not None else []
            s.spec_root = len(s.tokens)  # where this root lands
            key = (self.block_no(), s.index) if s.is_branch else "serial"
            got = spec.propose(DraftRequest(key, context, room, (s.own,) if s.own is not None else (), gap + [tok]))
            if got is not None:
                ask.drafts.append(DraftOffer(k, *got))
                owners.append(k)
        self.stats.speculate_s += time.perf_counter() - t0
        return owners

    def _verify(self, s: Stream, d: PendingDraft) -> list[int]:
        """Accept what the target agrees with; the next token (sampled, not decoded) is carried."""
        margins: list[float | None] = []
        n0 = len(s.content)

        def draw(r: int) -> int:
            s.row = r
            tok, m = self.sample(s, len(s.content) - n0)
            margins.append(m)
            return tok

        def accept(t: int) -> bool:
            if not self.is_plain(s, t):
                return False
            s.history.append(t)
            s.info.tokens.append(t)
            return True

        # plain decoding would sample the next token while the stream has room: a branch's room shrinks as
        # its content grows; the answer's budget counts the walk's tokens only once they are noted
        def may_draw() -> bool:
            return self.room(s) > (0 if s.is_branch else len(s.content) - n0)

        accepted, nxt = accept_walk(d.tree, d.root_row, d.rows, draw, accept, may_draw)
        t0 = time.perf_counter()
        settle(self.lane, d, accepted)
        st = self.stats
        st.draft_trees += 1
        st.draft_tokens += len(d.tree)
        st.accepted_draft_tokens += len(accepted)
        toks = [d.tree.tokens[i] for i in accepted]
        if s.own is not None and toks:
            s.own.extend(toks)
        st.speculate_s += time.perf_counter() - t0
        if s.is_branch:
            s.tokens.extend(toks)  # (the serial stream's tokens are its home sequence: settled already)
            s.margins.extend(margins[:len(toks)])
        else:
            for t, m in zip(toks, margins):
                self.note(t, m)
        s.carry = None if nxt is None else (nxt, margins[len(toks)])
        return toks
