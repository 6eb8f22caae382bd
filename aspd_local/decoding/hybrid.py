"""The hybrid serial-parallel decoder (docs/format.md section 6) in three modes, as a step function.

- ``ar``: control tokens masked; the model answers as a plain autoregressive model.
- ``sequential``: the serial-parallel structure, branches decoded one after another.
- ``parallel``: all branches of a block in one ``llama_decode`` per step.

The decoder never calls ``llama_decode``. It is a generator: it puts the rows of its next decode into its
lane's part of the batch and yields :data:`STEP`; the scheduler decodes every request's part in one call
and resumes it, and it reads its rows. Between two steps it also yields its events.

Serial text and a branch are one thing, a :class:`Stream`, with a different grammar phase and budget; a
step decodes a list of streams (the serial one, or every open branch of a block), each with its draft
tree when speculation pays, and one verify path accepts what the target agrees with.
``sequential`` and ``parallel`` run the same code; only the grouping of branches into steps differs,
so with the same logits they choose the same tokens.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ..aspd.encode import branch_prefix
from ..aspd.grammar import Grammar, Phase, title_key
from ..aspd.layout import branch_ending
from ..aspd.tokens import AspdTokens
from ..events import (BlockEnd, BlockInfo, BlockStart, BranchDelta, BranchEnd, Event, Result, SerialDelta, Stats)
from ..kv import Lane
from ..llama.context import KvFull
from ..llama.model import Model
from ..sampling import LogitsProcessor, SamplingParams, StreamInfo, StreamSampler
from ..suffix.index import TokenIndex
from ..suffix.proposer import DraftTree
from .speculative import DraftRequest, PendingDraft, Speculator, accept_walk, add_root_and_draft, settle
from .stops import StopFilter, cut_at_stop
from .text import TextStream

_MAX_NEW = 256  # tokens a stream's earlier proposals are followed along, at most (they die within max_depth)


class Step:
    """What a decoder yields when its part of the batch is ready to be decoded."""

    def __repr__(self) -> str:
        return "STEP"


STEP = Step()


def decode(lane: Lane) -> Iterator[Step]:
    """Hand the lane's part to the scheduler; raises KvFull when llama.cpp found no room for it."""
    yield STEP
    if lane.part.failed:
        raise KvFull()


class Mode(str, enum.Enum):
    AR = "ar"
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


@dataclass
class Caps:
    """Limits that end things cleanly instead of failing."""

    max_tokens: int = 512  # answer tokens in all (a block still closes past it)
    max_titles: int = 8  # titles (branches) per block; capped by the request's sequence ids
    max_title_tokens: int = 16
    max_branch_tokens: int = 256


class Cancelled(Exception):
    """Raised inside the decoder when the caller asked to stop."""


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
    cap: int = 0  # branch: content tokens at most
    prefix: list[int] = field(default_factory=list)  # branch: <|branch|> + tokens of (title + sep.)
    margins: list[float | None] = field(default_factory=list)  # branch: per decoded token (None when forced)
    next_token: int | None = None
    margin: float | None = None
    row: int = -1  # batch row (in the lane's part) of the logits for its next token
    reason: str = ""  # branch: why it closed
    carry: tuple[int, float | None] | None = None  # sampled while verifying a draft, not yet decoded
    own: TokenIndex | None = None  # the branch's own tokens, searched for drafts (speculation only)
    spec_root: int | None = None  # index in ``tokens`` of the root of the stream's last draft request
    stops: StopFilter | None = None  # branch: its text up to a stop string

    @property
    def content(self) -> list[int]:
        return self.info.tokens


class HybridDecoder:
    def __init__(self, model: Model, lane: Lane, aspd: AspdTokens | None, mode: Mode, sampling: SamplingParams,
                 caps: Caps, processors: Sequence[LogitsProcessor] = (), should_stop: Callable[[], bool] | None = None,
                 record_margins: bool = False, speculator: Speculator | None = None, stop: Sequence[str] = ()):
        self.model, self.lane = model, lane
        self.mode = Mode(mode)
        structured = self.mode != Mode.AR and aspd is not None
        self.aspd = aspd if structured else None
        self.grammar = Grammar(model.n_vocab, model.control_ids, model.eog_ids, aspd, structured)
        self.sampling, self.caps = sampling, caps
        self.processors = list(processors)
        self.should_stop = should_stop or (lambda: False)
        self.record_margins = record_margins
        self.stop = [s for s in stop if s]
        self.stats = Stats()
        self.answer: list[int] = []
        self.margins: list[float | None] = []
        self.rendered: list[bytes] = []
        self.blocks: list[BlockInfo] = []
        self.finish_reason = "stop"
        self.stopped = False  # a stop string ended the answer
        self.speculator = speculator

    # -- helpers --------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.should_stop():
            raise Cancelled()

    def _decode(self) -> Iterator[Step]:
        part = self.lane.part
        yield from decode(self.lane)
        self.stats.decode_s += part.decode_s
        self.stats.decode_calls += 1
        self.stats.batch_sizes[part.batch_n] = self.stats.batch_sizes.get(part.batch_n, 0) + 1

    def _sample(self, s: Stream) -> int:
        tok = s.sampler.sample(self.lane.logits(s.row), self.grammar.constraint(s.phase), s.history, s.info,
                               want_margin=self.record_margins)
        self.stats.sampled_tokens += 1
        return tok

    def _draw(self, s: Stream, row: int, margins: list) -> int:
        s.row = row
        t = self._sample(s)
        margins.append(s.sampler.last_margin if self.record_margins else None)
        return t

    def _retract(self, s: Stream, n: int) -> None:
        """Take back the last ``n`` serial tokens of the answer: their KV cells, the stream, the counts. (The
        speculator keeps having seen them: its index only shapes proposals, never the output.)"""
        self.lane.rollback(len(self.lane.tokens) - n)
        del self.answer[-n:], self.margins[-n:], s.history[-n:], s.info.tokens[-n:]
        self.stats.tokens -= n

    def _note(self, token: int, margin: float | None) -> None:
        self.answer.append(token)
        self.margins.append(margin)
        self.stats.tokens += 1
        if self.speculator is not None:
            t0 = time.perf_counter()
            self.speculator.observe(token)
            self.stats.speculate_s += time.perf_counter() - t0

    def _is_plain(self, s: Stream, tok: int) -> bool:
        """Whether ``tok`` is ordinary content of ``s`` (a draft walk may accept it and go on)."""
        if self.grammar.is_eog(tok):
            return False
        if s.index is not None:
            return tok != self.aspd.branch_close
        return self.aspd is None or tok not in self.aspd.ids

    def _may_draw(self, s: Stream, n_more: int) -> bool:
        """Whether plain decoding would sample the stream's next token after ``n_more`` more accepted ones
        (the answer's token budget in serial text; a branch's cap, where <|/branch|> is forced)."""
        if s.index is not None:
            return len(s.content) < s.cap
        return self.stats.tokens + n_more < self.caps.max_tokens

    # -- one step: every stream's next token (with its draft), one decode -----
    def _step(self, streams: list[Stream], speculate: list[bool]) -> Iterator[Step]:
        """Decode each stream's ``next_token`` (and a draft tree where ``speculate`` allows and it pays) in
        one step. Returns the pending drafts, to verify with :meth:`_verify`."""
        drafts = self._plan_drafts(streams, speculate)
        pend = self._fill(streams, drafts)
        try:
            yield from self._decode()
        except KvFull:
            if not any(pend):
                raise
            self.lane.drop_drafts()  # no room for the drafts: the plain step
            self.lane.part.clear()
            pend = self._fill(streams, [None] * len(streams))
            yield from self._decode()
        return pend

    def _fill(self, streams: list[Stream], drafts: list[DraftTree | None]) -> list[PendingDraft | None]:
        lane = self.lane
        pend: list[PendingDraft | None] = []
        for s, tree in zip(streams, drafts):
            pos = self._next_pos(s)
            if tree is not None:
                t0 = time.perf_counter()
                d = add_root_and_draft(lane, s.next_token, pos, s.seq, tree)
                self.stats.speculate_s += time.perf_counter() - t0
                s.row = d.root_row
            else:
                d = None
                s.row = lane.part.add(s.next_token, pos, s.seq, self._wants_logits(s, s.next_token))
            pend.append(d)
        return pend

    def _next_pos(self, s: Stream) -> int:
        if s.index is None:
            return self.lane.next_pos
        return self._para_pos + len(s.tokens) + 1

    def _wants_logits(self, s: Stream, tok: int) -> bool:
        if self.aspd is None:
            return True
        return tok != (self.aspd.branch_close if s.index is not None else self.aspd.para_open)

    def _plan_drafts(self, streams: list[Stream], speculate: list[bool]) -> list[DraftTree | None]:
        """Draft trees for the streams' next tokens, sized together for the step's one decode."""
        spec, lane = self.speculator, self.lane
        out: list[DraftTree | None] = [None] * len(streams)
        if spec is None or not any(speculate):
            return out
        t0 = time.perf_counter()
        depth = spec.proposer.max_depth
        reqs, where = [], []
        for i, (s, ok) in enumerate(zip(streams, speculate)):
            tok = s.next_token
            if not ok or not self._is_plain(s, tok):
                continue
            if s.index is None:
                room = min(lane.free_cells - 1, self.caps.max_tokens - self.stats.tokens - 1)
            else:
                room = s.cap - len(s.content) - 1  # the root is content too; the walk draws while under the cap
            if room <= 0:
                continue
            tail = s.tokens[-depth:]
            context = (s.head[-(depth - len(tail)):] if len(tail) < depth else []) + tail + [tok]
            gap = s.tokens[s.spec_root + 1:s.spec_root + 1 + _MAX_NEW] if s.spec_root is not None else []
            s.spec_root = len(s.tokens)  # where this root lands
            key = "serial" if s.index is None else (len(self.blocks), s.index)
            reqs.append(DraftRequest(key, context, room, (s.own,) if s.own is not None else (), gap + [tok]))
            where.append(i)
        # cells the open branches still need (each up to its cap and its close, then <|/para|>) stay free
        need = sum(s.cap + 1 - len(s.content) for s in streams if s.index is not None)
        spare = lane.free_cells - need - 1
        max_nodes = min(spare, lane.batch_room - len(streams))
        if reqs and max_nodes > 0:
            trees = spec.plan_step(reqs, len(streams), max_nodes, lane.free_seq_count,
                                   other_rows=lane.cache.other_rows)
            for i, tree in zip(where, trees):
                out[i] = tree
        self.stats.speculate_s += time.perf_counter() - t0
        return out

    def _verify(self, s: Stream, d: PendingDraft) -> tuple[list[int], tuple[int, float | None] | None]:
        """Accept what the target agrees with: returns the accepted tokens and the next token (sampled, not
        decoded) with its margin, or None when plain decoding would not sample it (budget spent)."""
        margins: list[float | None] = []
        n0 = len(s.content)

        def accept(t: int) -> bool:
            if not self._is_plain(s, t):
                return False
            s.history.append(t)
            s.info.tokens.append(t)
            return True

        accepted, nxt = accept_walk(d.tree, d.root_row, d.rows, lambda row: self._draw(s, row, margins), accept,
                                    lambda: self._may_draw(s, len(s.content) - n0))
        t0 = time.perf_counter()
        settle(self.lane, d, accepted)
        self.stats.draft_trees += 1
        self.stats.draft_tokens += len(d.tree)
        self.stats.accepted_draft_tokens += len(accepted)
        toks = [d.tree.tokens[i] for i in accepted]
        if s.own is not None and toks:
            s.own.extend(toks)
        self.stats.speculate_s += time.perf_counter() - t0
        if s.index is not None:
            s.tokens.extend(toks)  # (the serial stream's tokens are its home sequence: settled already)
            s.margins.extend(margins[:len(toks)])
        s.carry = None if nxt is None else (nxt, margins[len(toks)])
        return toks, margins[:len(toks)]

    # -- the answer -----------------------------------------------------------
    def run(self, row: int) -> Iterator[Event | Step]:
        """Decode an answer; ``row`` (in the lane's part) holds the logits of the last prompt token. Yields
        events and steps; the result is in ``self.result()`` afterwards."""
        aspd, lane = self.aspd, self.lane
        s = Stream(lane.home, StreamSampler(self.sampling, (0,), self.processors),
                   lane.tokens[-max(self.sampling.repeat_last_n, 1):], StreamInfo(None, None, []),
                   TextStream(self.model.piece), Phase.SERIAL, lane.tokens, row=row)
        stops = StopFilter(self.stop)
        titles: list[list[int]] = []
        title_keys: set[str] = set()  # the block's titles so far, as title_key() sees them
        cur_title: list[int] = []
        t_serial = time.perf_counter()
        while True:
            self._check_stop()
            forced = None
            if s.carry is not None:
                (tok, margin), s.carry = s.carry, None
            else:
                if s.phase == Phase.TITLE and len(cur_title) >= self.caps.max_title_tokens:
                    forced = aspd.title_close
                elif s.phase == Phase.AFTER_TITLE and len(titles) >= self._max_branches():
                    forced = aspd.para_open
                elif self.stats.tokens >= self.caps.max_tokens:
                    if s.phase == Phase.SERIAL:
                        self.finish_reason = "length"
                        break
                    # inside titles: finish the announcement so the block can close cleanly
                    forced = aspd.title_close if s.phase == Phase.TITLE else aspd.para_open
                if forced is None:
                    tok = self._sample(s)
                    margin = s.sampler.last_margin if self.record_margins else None
                else:
                    tok, margin = forced, None
            if s.phase == Phase.SERIAL and self.grammar.is_eog(tok):
                self.finish_reason = "stop"
                break
            if s.phase == Phase.TITLE and tok == aspd.title_close:
                key = title_key(self.model.detokenize(cur_title))
                if key in title_keys:
                    # Titles are unique within a block (docs/format.md section 2); a branch under a repeated title
                    # would decode its sibling's text again. The model is done listing: take the repeated
                    # title back and open the block with the titles before it.
                    self._retract(s, len(cur_title) + 1)
                    self.stats.repeated_titles += 1
                    tok, margin, forced, s.phase = aspd.para_open, None, aspd.para_open, Phase.AFTER_TITLE
                else:
                    title_keys.add(key)
            if lane.free_cells < 1:
                self.finish_reason = "context"
                break
            s.next_token = tok
            try:
                pend = yield from self._step([s], [s.phase == Phase.SERIAL and forced is None])
            except KvFull:
                self.finish_reason = "context"
                break
            self._note(tok, margin)
            s.history.append(tok)
            s.info.tokens.append(tok)
            if s.phase == Phase.SERIAL:
                if aspd is not None and tok == aspd.title_open:
                    s.phase, cur_title = Phase.TITLE, []
                    continue
                toks, margins = [tok], [margin]
                if pend[0] is not None:
                    more, more_margins = self._verify(s, pend[0])
                    toks += more
                    margins += more_margins
                    for t, m in zip(more, more_margins):
                        self._note(t, m)
                for t in toks:
                    delta = s.text.push(t)
                    if delta:
                        out = stops.feed(delta)
                        if out:
                            yield SerialDelta(out)
                if stops.stopped:
                    s.carry = None
                    self.finish_reason, self.stopped = "stop", True
                    break
            elif s.phase == Phase.TITLE:
                if tok == aspd.title_close:
                    titles.append(cur_title)
                    s.phase = Phase.AFTER_TITLE
                else:
                    cur_title.append(tok)
            elif s.phase == Phase.AFTER_TITLE:
                if tok == aspd.title_open:
                    s.phase, cur_title = Phase.TITLE, []
                else:  # <|para|>: fork, decode the branches, join
                    self.stats.serial_s += time.perf_counter() - t_serial
                    t_par = time.perf_counter()
                    self.rendered.append(b"".join(s.text.parts))
                    s.text = TextStream(self.model.piece)
                    row = yield from self._block(titles, s.history)
                    self.stats.parallel_s += time.perf_counter() - t_par
                    t_serial = time.perf_counter()
                    titles, title_keys = [], set()
                    s.phase = Phase.SERIAL
                    if row is None:
                        break
                    s.row = row
                    if any(b.reason == "stop" for b in self._last_branches):
                        self.finish_reason, self.stopped = "stop", True
                        break
        tail = s.text.flush()
        out = stops.feed(tail) + stops.flush() if tail or stops.held else ""
        if out:
            yield SerialDelta(out)
        self.rendered.append(b"".join(s.text.parts))
        self.stats.serial_s += time.perf_counter() - t_serial

    def _max_branches(self) -> int:
        return max(1, min(self.caps.max_titles, self.lane.free_seq_count + 1))

    # -- a parallel block -----------------------------------------------------
    def _block(self, titles: list[list[int]], history: list[int]) -> Iterator[Event | Step]:
        """Fork at <|para|>, decode every branch, join, decode <|/para|>. Returns the logits row of
        <|/para|>, or None when the answer must end here (no room left)."""
        aspd, lane, model = self.aspd, self.lane, self.model
        block = len(self.blocks)
        self._para_pos = para_pos = lane.next_pos - 1
        title_texts = [model.detokenize(t) for t in titles]
        prefixes = [branch_prefix(t, aspd, model.tokenize) for t in title_texts]
        n = len(prefixes)
        # Caps are set before any branch runs, so they do not depend on the schedule: each branch
        # gets an equal share of the token budget and of the free context (one cell kept for <|/para|>).
        budget = self.caps.max_tokens - self.stats.tokens - sum(len(p) for p in prefixes)
        room = lane.free_cells - 1 - sum(len(p) for p in prefixes)
        room_cap = room // n - 1  # one token of each share is the closing <|/branch|>
        other_cap = min(self.caps.max_branch_tokens, budget // n - 1)
        cap = max(0, min(room_cap, other_cap))
        context_short = room_cap < other_cap
        self._last_branches = []
        if room < n:  # not even the closing tokens fit: end the answer at <|para|>
            self.finish_reason = "context"
            return None
        self.stats.blocks += 1
        self.stats.branches += n
        yield BlockStart(block, title_texts)
        seqs = [lane.home] + [lane.fork() for _ in range(1, n)]
        base_hist = history[-max(self.sampling.repeat_last_n, 1):]
        depth = self.speculator.proposer.max_depth if self.speculator is not None else 0
        head = lane.tokens[-depth:] if depth else []
        branches = [
            Stream(seqs[k], StreamSampler(self.sampling, (1, block, k), self.processors), base_hist + prefixes[k],
                   StreamInfo(block, k, []), TextStream(model.piece), Phase.BRANCH, [], head, index=k, cap=cap,
                   prefix=prefixes[k], stops=StopFilter(self.stop) if self.stop else None)
            for k in range(n)
        ]
        self._last_branches = branches
        if self.speculator is not None:
            for b in branches:
                b.own = TokenIndex(self.speculator.proposer.max_depth)
                b.own.open_sequence(b.prefix)
        groups = [branches] if self.mode == Mode.PARALLEL else [[b] for b in branches]
        for group in groups:
            yield from self._run_group(group, block, context_short)
        # Join: the home sequence gets every branch; the committed stream reads branch 0, 1, ... in order.
        lane.join(seqs)
        for b in branches:
            for t, m in zip(b.tokens, b.margins):
                self._note(t, m)
        texts = [b.text.text if b.stops is None else _cut(b) for b in branches]
        self.blocks.append(BlockInfo(title_texts, texts, [len(b.tokens) for b in branches]))
        self.rendered.extend(b"".join(b.text.parts) for b in branches)
        yield BlockEnd(block, texts)
        lmax = max(len(b.tokens) for b in branches)
        lane.part.clear()
        row = lane.part.add(aspd.para_close, para_pos + 1 + lmax, lane.home, True)
        yield from self._decode()
        self._note(aspd.para_close, None)
        history.extend(aspd_tok for b in branches for aspd_tok in b.tokens)
        history.append(aspd.para_close)
        if self.stats.tokens >= self.caps.max_tokens:
            self.finish_reason = "length"
            return None
        return row

    def _run_group(self, group: list[Stream], block: int, context_short: bool) -> Iterator[Event | Step]:
        lane, para_pos = self.lane, self._para_pos
        # Branch prefill: every prefix in one step, logits only for each prefix's last token.
        for b in group:
            for j, t in enumerate(b.prefix):
                r = lane.part.add(t, para_pos + 1 + j, b.seq, j == len(b.prefix) - 1)
            b.row = r
        yield from self._decode()
        for b in group:
            b.tokens.extend(b.prefix)
            b.margins.extend([None] * len(b.prefix))
        close = self.aspd.branch_close
        active = list(group)
        while active:
            self._check_stop()
            for b in active:
                if b.carry is not None:  # drawn while verifying the branch's last draft
                    (tok, b.margin), b.carry = b.carry, None
                elif len(b.content) >= b.cap:
                    tok, b.margin = close, None
                    b.reason = "context" if context_short else "cap"
                else:
                    tok = self._sample(b)
                    b.margin = b.sampler.last_margin if self.record_margins else None
                if self.grammar.is_eog(tok):
                    tok, b.reason = close, "eos"
                elif tok == close and not b.reason:
                    b.reason = "closed"
                b.next_token = tok
            pend = yield from self._step(active, [True] * len(active))
            still = []
            for b, d in zip(active, pend):
                t = b.next_token
                b.tokens.append(t)
                b.margins.append(b.margin)
                b.history.append(t)
                if t == close:
                    yield from self._end_branch(b, block)
                    continue
                b.info.tokens.append(t)
                if b.own is not None:
                    b.own.extend((t,))
                toks = [t]
                if d is not None:
                    toks += self._verify(b, d)[0]
                if (yield from self._branch_text(b, block, toks)):
                    # a stop string closes the branch at its next step (the answer ends after the block)
                    b.reason, b.carry = "stop", (close, None)
                still.append(b)
            active = still

    def _branch_text(self, b: Stream, block: int, toks: list[int]) -> Iterator[Event]:
        """Stream a branch's new tokens as text; returns True when a stop string appeared in it."""
        for t in toks:
            delta = b.text.push(t)
            if b.stops is not None:
                delta = b.stops.feed(delta)
            if delta:
                yield BranchDelta(block, b.index, delta)
        return b.stops is not None and b.stops.stopped

    def _end_branch(self, b: Stream, block: int) -> Iterator[Event]:
        tail = b.text.flush()
        if b.stops is not None:
            tail = b.stops.feed(tail) + b.stops.flush()
        if tail:
            yield BranchDelta(block, b.index, tail)
        end = "" if b.stops is not None and b.stops.stopped else branch_ending(
            b.text.text, b.index == len(self._last_branches) - 1)
        if end:
            # a branch cut short (its budget, the context) still ends its line, and a paragraph before a
            # sibling ends with a blank line: the joined block is well formed (docs/format.md, rendering);
            # display only, no token is added
            b.text.parts.append(end.encode())
            yield BranchDelta(block, b.index, end)
        yield BranchEnd(block, b.index, b.text.text if b.stops is None else _cut(b), b.reason)

    # -- result ---------------------------------------------------------------
    def result(self) -> Result:
        text = b"".join(self.rendered).decode("utf-8", errors="replace")
        if self.stop:
            text, hit = cut_at_stop(text, self.stop)
            if hit and self.finish_reason != "cancelled":
                self.finish_reason, self.stopped = "stop", True
        return Result(text=text, tokens=list(self.answer), finish_reason=self.finish_reason, mode=self.mode.value,
                      blocks=self.blocks, stats=self.stats, margins=list(self.margins) if self.record_margins else None)


def _cut(b: Stream) -> str:
    return cut_at_stop(b.text.text, b.stops.stop)[0]
