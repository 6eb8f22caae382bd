"""The hybrid serial-parallel decoder (spec section 6) in three modes.

- ``ar``: control tokens masked; the model answers as a plain autoregressive model.
- ``sequential``: the serial-parallel structure, branches decoded one after another.
- ``parallel``: all branches of a block in one ``llama_decode`` per step.

``sequential`` and ``parallel`` run the same code; only the grouping of branches into decode calls
differs, so with the same logits they choose the same tokens.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ..aspd.encode import branch_prefix
from ..aspd.grammar import Grammar, Phase, title_key
from ..aspd.tokens import AspdTokens
from ..events import (BlockEnd, BlockInfo, BlockStart, BranchDelta, BranchEnd, Event, Result, SerialDelta, Stats)
from ..kv import KvBook
from ..llama.context import Context, KvFull
from ..llama.model import Model
from ..sampling import LogitsProcessor, SamplingParams, StreamInfo, StreamSampler
from ..suffix.index import TokenIndex
from ..suffix.proposer import DraftTree
from .speculative import DraftRequest, PendingDraft, Speculator, accept_walk, add_root_and_draft, settle
from .text import TextStream


_MAX_NEW = 256  # tokens a stream's earlier proposals are followed along, at most (they die within max_depth)


class Mode(str, enum.Enum):
    AR = "ar"
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


@dataclass
class Caps:
    """Limits that end things cleanly instead of failing."""

    max_tokens: int = 512  # answer tokens in all (a block still closes past it)
    max_titles: int = 8  # titles (branches) per block; capped by the context's sequence ids
    max_title_tokens: int = 16
    max_branch_tokens: int = 256


class Cancelled(Exception):
    """Raised inside the decoder when the caller asked to stop."""


@dataclass
class _Branch:
    index: int
    seq: int
    prefix: list[int]
    sampler: StreamSampler
    history: list[int]
    cap: int
    text: TextStream
    tokens: list[int] = field(default_factory=list)  # prefix, content and close, as decoded
    content: list[int] = field(default_factory=list)
    margins: list[float | None] = field(default_factory=list)  # per decoded token (None when forced)
    next_token: int | None = None
    margin: float | None = None
    row: int = -1
    done: bool = False
    reason: str = ""
    carry: tuple[int, float | None] | None = None  # sampled during draft verification, not yet decoded
    own: TokenIndex | None = None  # the branch's own tokens, searched for drafts (speculation only)
    spec_root: int | None = None  # index in ``tokens`` of the root of the branch's last draft request

    @property
    def next_pos_offset(self) -> int:  # j of the next token to decode
        return len(self.tokens) + 1


class HybridDecoder:
    def __init__(self, model: Model, ctx: Context, book: KvBook, aspd: AspdTokens | None, mode: Mode,
                 sampling: SamplingParams, caps: Caps, processors: Sequence[LogitsProcessor] = (),
                 should_stop: Callable[[], bool] | None = None, record_margins: bool = False,
                 speculator: Speculator | None = None):
        self.model, self.ctx, self.book = model, ctx, book
        self.mode = Mode(mode)
        structured = self.mode != Mode.AR and aspd is not None
        self.aspd = aspd if structured else None
        self.grammar = Grammar(model.n_vocab, model.control_ids, model.eog_ids, aspd, structured)
        self.sampling, self.caps = sampling, caps
        self.processors = list(processors)
        self.should_stop = should_stop or (lambda: False)
        self.record_margins = record_margins
        self.stats = Stats()
        self.answer: list[int] = []
        self.margins: list[float | None] = []
        self.rendered: list[bytes] = []
        self.blocks: list[BlockInfo] = []
        self.finish_reason = "stop"
        self.speculator = speculator
        self._spec_root: int | None = None  # index in book.tokens of the last serial draft request's root

    # -- helpers --------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.should_stop():
            raise Cancelled()

    def _decode(self) -> None:
        n = self.ctx.batch.n
        t0 = time.perf_counter()
        self.ctx.decode()
        self.stats.decode_s += time.perf_counter() - t0
        self.stats.decode_calls += 1
        self.stats.batch_sizes[n] = self.stats.batch_sizes.get(n, 0) + 1

    def _sample(self, sampler: StreamSampler, row: int, phase: Phase, history: list[int], info: StreamInfo) -> int:
        tok = sampler.sample(self.ctx.logits(row), self.grammar.constraint(phase), history, info,
                             want_margin=self.record_margins)
        self.stats.sampled_tokens += 1
        return tok

    def _retract(self, n: int, history: list[int], info: StreamInfo) -> None:
        """Take back the last ``n`` serial tokens of the answer: their KV cells, the stream, the counts. (The
        speculator keeps having seen them: its index only shapes proposals, never the output.)"""
        self.book.rollback(len(self.book.tokens) - n)
        del self.answer[-n:], self.margins[-n:], history[-n:], info.tokens[-n:]
        self.stats.tokens -= n

    def _note(self, token: int, margin: float | None) -> None:
        self.answer.append(token)
        self.margins.append(margin)
        self.stats.tokens += 1
        if self.speculator is not None:
            t0 = time.perf_counter()
            self.speculator.observe(token)
            self.stats.speculate_s += time.perf_counter() - t0

    # -- speculation ----------------------------------------------------------
    def _plan_draft(self, tok: int) -> DraftTree | None:
        """A draft tree to verify together with ``tok`` (serial text only), sized by room and budget."""
        spec = self.speculator
        if spec is None or self.grammar.is_eog(tok) or (self.aspd is not None and tok in self.aspd.ids):
            return None
        t0 = time.perf_counter()
        room = min(self.book.free_cells - 1, self.caps.max_tokens - self.stats.tokens - 1, self.ctx.n_batch - 1)
        toks = self.book.tokens
        context = toks[-spec.proposer.max_depth:] + [tok]
        # what the stream produced since the last plan: its earlier proposals are checked against it
        new = (toks[self._spec_root + 1:self._spec_root + 1 + _MAX_NEW] if self._spec_root is not None else []) + [tok]
        self._spec_root = len(toks)  # where this root lands
        tree = spec.plan(context, room, self.book.free_seq_count, new)
        self.stats.speculate_s += time.perf_counter() - t0
        return tree

    def _plan_branch_drafts(self, active: list[_Branch], block: int) -> list[DraftTree | None]:
        """Draft trees for the branches' next tokens, sized together for the step's one decode."""
        spec, book = self.speculator, self.book
        out: list[DraftTree | None] = [None] * len(active)
        if spec is None:
            return out
        t0 = time.perf_counter()
        close = self.aspd.branch_close
        depth = spec.proposer.max_depth
        reqs, where = [], []
        for i, b in enumerate(active):
            room = b.cap - len(b.content) - 1  # the root is content too; the walk draws while under the cap
            if b.next_token == close or room <= 0:
                continue
            tail = b.tokens[-depth:]
            context = (book.tokens[-(depth - len(tail)):] if len(tail) < depth else []) + tail + [b.next_token]
            gap = b.tokens[b.spec_root + 1:b.spec_root + 1 + _MAX_NEW] if b.spec_root is not None else []
            new = gap + [b.next_token]
            b.spec_root = len(b.tokens)
            reqs.append(DraftRequest((block, b.index), context, room, (b.own,) if b.own is not None else (), new))
            where.append(i)
        # cells the block still needs (each branch up to its cap and its close, then <|/para|>) stay free
        spare = book.free_cells - sum(b.cap + 1 - len(b.content) for b in active) - 1
        max_nodes = min(spare, self.ctx.n_batch - len(active))
        if reqs and max_nodes > 0:
            trees = spec.plan_step(reqs, len(active), max_nodes, book.free_seq_count)
            for i, tree in zip(where, trees):
                out[i] = tree
        self.stats.speculate_s += time.perf_counter() - t0
        return out

    def _settle(self, key, d: PendingDraft, accepted: list[int]) -> None:
        t0 = time.perf_counter()
        settle(self.book, d, accepted)
        self.stats.draft_trees += 1
        self.stats.draft_tokens += len(d.tree)
        self.stats.accepted_draft_tokens += len(accepted)
        self.stats.speculate_s += time.perf_counter() - t0

    # -- serial mode ----------------------------------------------------------
    def run(self, row: int) -> Iterator[Event]:
        """Decode an answer; ``row`` holds the logits of the last prompt token. Yields events; the
        result is in ``self.result()`` afterwards."""
        aspd = self.aspd
        sampler = StreamSampler(self.sampling, (0,), self.processors)
        serial_text = TextStream(self.model.piece)
        info = StreamInfo(None, None, [])
        history = self.book.tokens[-max(self.sampling.repeat_last_n, 1):]
        phase = Phase.SERIAL
        titles: list[list[int]] = []
        title_keys: set[str] = set()  # the block's titles so far, as title_key() sees them
        cur_title: list[int] = []
        t_serial = time.perf_counter()
        carry = None  # a token already sampled during draft verification, not yet decoded
        while True:
            self._check_stop()
            forced = None
            if carry is not None:
                (tok, margin), carry = carry, None
            else:
                if phase == Phase.TITLE and len(cur_title) >= self.caps.max_title_tokens:
                    forced = aspd.title_close
                elif phase == Phase.AFTER_TITLE and len(titles) >= self._max_branches():
                    forced = aspd.para_open
                elif self.stats.tokens >= self.caps.max_tokens:
                    if phase == Phase.SERIAL:
                        self.finish_reason = "length"
                        break
                    # inside titles: finish the announcement so the block can close cleanly
                    forced = aspd.title_close if phase == Phase.TITLE else aspd.para_open
                if forced is None:
                    tok = self._sample(sampler, row, phase, history, info)
                    margin = sampler.last_margin if self.record_margins else None
                else:
                    tok, margin = forced, None
            if phase == Phase.SERIAL and self.grammar.is_eog(tok):
                self.finish_reason = "stop"
                break
            if phase == Phase.TITLE and tok == aspd.title_close:
                key = title_key(self.model.detokenize(cur_title))
                if key in title_keys:
                    # Titles are unique within a block (spec section 2); a branch under a repeated title
                    # would decode its sibling's text again. The model is done listing: take the repeated
                    # title back and open the block with the titles before it.
                    self._retract(len(cur_title) + 1, history, info)
                    self.stats.repeated_titles += 1
                    tok, margin, forced, phase = aspd.para_open, None, aspd.para_open, Phase.AFTER_TITLE
                else:
                    title_keys.add(key)
            if self.book.free_cells < 1:
                self.finish_reason = "context"
                break
            pos = self.book.next_pos
            want_logits = aspd is None or tok != aspd.para_open
            draft = self._plan_draft(tok) if phase == Phase.SERIAL and forced is None else None
            self.ctx.batch.clear()
            pending = None
            if draft is not None:
                pending = add_root_and_draft(self.ctx, self.book, tok, pos, 0, draft)
                row = pending.root_row
            else:
                row = self.ctx.batch.add(tok, pos, 0, want_logits)
            try:
                self._decode()
            except KvFull:
                if pending is None:
                    self.finish_reason = "context"
                    break
                # no room for the draft: decode the token alone, as plain decoding would
                self.book.drop_drafts()
                pending = None
                self.ctx.batch.clear()
                row = self.ctx.batch.add(tok, pos, 0, want_logits)
                try:
                    self._decode()
                except KvFull:
                    self.finish_reason = "context"
                    break
            self.book.commit(tok, pos)
            self._note(tok, margin)
            history.append(tok)
            info.tokens.append(tok)
            if phase == Phase.SERIAL:
                if aspd is not None and tok == aspd.title_open:
                    phase, cur_title = Phase.TITLE, []
                else:
                    delta = serial_text.push(tok)
                    if delta:
                        yield SerialDelta(delta)
                    if pending is not None:
                        carry = yield from self._verify(pending, sampler, history, info, serial_text)
            elif phase == Phase.TITLE:
                if tok == aspd.title_close:
                    titles.append(cur_title)
                    phase = Phase.AFTER_TITLE
                else:
                    cur_title.append(tok)
            elif phase == Phase.AFTER_TITLE:
                if tok == aspd.title_open:
                    phase, cur_title = Phase.TITLE, []
                else:  # <|para|>: fork, decode the branches, join
                    self.stats.serial_s += time.perf_counter() - t_serial
                    t_par = time.perf_counter()
                    self.rendered.append(b"".join(serial_text.parts))
                    serial_text = TextStream(self.model.piece)
                    row = yield from self._block(titles, history)
                    self.stats.parallel_s += time.perf_counter() - t_par
                    t_serial = time.perf_counter()
                    titles, title_keys = [], set()
                    phase = Phase.SERIAL
                    if row is None:
                        break
        tail = serial_text.flush()
        if tail:
            yield SerialDelta(tail)
        self.rendered.append(b"".join(serial_text.parts))
        self.stats.serial_s += time.perf_counter() - t_serial

    def _verify(self, d: PendingDraft, sampler: StreamSampler, history: list[int], info: StreamInfo,
                serial_text: TextStream) -> Iterator[Event]:
        """Accept what the target agrees with. Returns the next token (sampled, not decoded) with its
        margin, or None when plain decoding would stop sampling here (the token budget is spent)."""
        margins: list[float | None] = []
        start = self.stats.tokens

        def may_draw() -> bool:  # every draw so far was accepted: len(margins) tokens added
            return start + len(margins) < self.caps.max_tokens

        def draw(row: int) -> int:
            t = self._sample(sampler, row, Phase.SERIAL, history, info)
            margins.append(sampler.last_margin if self.record_margins else None)
            return t

        def accept(t: int) -> bool:
            if self.grammar.is_eog(t) or (self.aspd is not None and t in self.aspd.ids):
                return False
            history.append(t)
            info.tokens.append(t)
            return True

        accepted, nxt = accept_walk(d.tree, d.root_row, d.rows, draw, accept, may_draw)
        self._settle("serial", d, accepted)
        for i, node in enumerate(accepted):
            t = d.tree.tokens[node]
            self._note(t, margins[i])
            delta = serial_text.push(t)
            if delta:
                yield SerialDelta(delta)
        return None if nxt is None else (nxt, margins[len(accepted)])

    def _verify_branch(self, b: _Branch, d: PendingDraft, block: int) -> Iterator[Event]:
        """A branch's draft: accept, keep the accepted cells in the branch's sequence, leave the next
        token in ``b.carry``."""
        close = self.aspd.branch_close
        info = StreamInfo(block, b.index, b.content)
        margins: list[float | None] = []

        def may_draw() -> bool:  # plain decoding forces <|/branch|> at the cap instead of sampling
            return len(b.content) < b.cap

        def draw(row: int) -> int:
            t = self._sample(b.sampler, row, Phase.BRANCH, b.history, info)
            margins.append(b.sampler.last_margin if self.record_margins else None)
            return t

        def accept(t: int) -> bool:
            if self.grammar.is_eog(t) or t == close:
                return False
            b.content.append(t)
            b.history.append(t)
            return True

        accepted, nxt = accept_walk(d.tree, d.root_row, d.rows, draw, accept, may_draw)
        self._settle((block, b.index), d, accepted)
        toks = [d.tree.tokens[i] for i in accepted]
        b.tokens.extend(toks)
        b.margins.extend(margins[: len(toks)])
        if b.own is not None and toks:
            t0 = time.perf_counter()
            b.own.extend(toks)
            self.stats.speculate_s += time.perf_counter() - t0
        for t in toks:
            delta = b.text.push(t)
            if delta:
                yield BranchDelta(block, b.index, delta)
        b.carry = None if nxt is None else (nxt, margins[len(toks)])

    def _max_branches(self) -> int:
        return max(1, min(self.caps.max_titles, self.book.free_seq_count + 1))

    # -- a parallel block -----------------------------------------------------
    def _block(self, titles: list[list[int]], history: list[int]) -> Iterator[Event]:
        """Fork at <|para|>, decode every branch, join, decode <|/para|>. Returns the logits row of
        <|/para|>, or None when the answer must end here (no room left)."""
        aspd, book, model = self.aspd, self.book, self.model
        block = len(self.blocks)
        para_pos = book.next_pos - 1
        title_texts = [model.detokenize(t) for t in titles]
        prefixes = [branch_prefix(t, aspd, model.tokenize) for t in title_texts]
        n = len(prefixes)
        # Caps are set before any branch runs, so they do not depend on the schedule: each branch
        # gets an equal share of the token budget and of the free context (one cell kept for <|/para|>).
        budget = self.caps.max_tokens - self.stats.tokens - sum(len(p) for p in prefixes)
        room = book.free_cells - 1 - sum(len(p) for p in prefixes)
        room_cap = room // n - 1  # one token of each share is the closing <|/branch|>
        other_cap = min(self.caps.max_branch_tokens, budget // n - 1)
        cap = max(0, min(room_cap, other_cap))
        context_short = room_cap < other_cap
        if room < n:  # not even the closing tokens fit: end the answer at <|para|>
            self.finish_reason = "context"
            return None
        self.stats.blocks += 1
        self.stats.branches += n
        yield BlockStart(block, title_texts)
        seqs = [0] + [book.fork() for _ in range(1, n)]
        base_hist = history[-max(self.sampling.repeat_last_n, 1):]
        branches = [
            _Branch(k, seqs[k], prefixes[k], StreamSampler(self.sampling, (1, block, k), self.processors),
                    base_hist + prefixes[k], cap, TextStream(model.piece))
            for k in range(n)
        ]
        if self.speculator is not None:
            for b in branches:
                b.own = TokenIndex(self.speculator.proposer.max_depth)
                b.own.open_sequence(b.prefix)
        groups = [branches] if self.mode == Mode.PARALLEL else [[b] for b in branches]
        for group in groups:
            yield from self._run_group(group, para_pos, block, context_short)
        # Join: sequence 0 gets every branch; the committed stream reads branch 0, 1, ... in order.
        book.join(seqs)
        for b in branches:
            for t, m in zip(b.tokens, b.margins):
                self._note(t, m)
        texts = [b.text.text for b in branches]
        self.blocks.append(BlockInfo(title_texts, texts, [len(b.tokens) for b in branches]))
        self.rendered.extend(b"".join(b.text.parts) for b in branches)
        yield BlockEnd(block, texts)
        lmax = max(len(b.tokens) for b in branches)
        self.ctx.batch.clear()
        row = self.ctx.batch.add(aspd.para_close, para_pos + 1 + lmax, 0, True)
        self._decode()
        book.commit(aspd.para_close, para_pos + 1 + lmax)
        self._note(aspd.para_close, None)
        history.extend(aspd_tok for b in branches for aspd_tok in b.tokens)
        history.append(aspd.para_close)
        if self.stats.tokens >= self.caps.max_tokens:
            self.finish_reason = "length"
            return None
        return row

    def _run_group(self, group: list[_Branch], para_pos: int, block: int, context_short: bool) -> Iterator[Event]:
        ctx, book = self.ctx, self.book
        # Branch prefill: every prefix in one batch, logits only for each prefix's last token.
        ctx.batch.clear()
        for b in group:
            for j, t in enumerate(b.prefix):
                r = ctx.batch.add(t, para_pos + 1 + j, b.seq, j == len(b.prefix) - 1)
            b.row = r
        self._decode()
        for b in group:
            book.extend(b.seq, b.prefix, [para_pos + 1 + j for j in range(len(b.prefix))])
            b.tokens.extend(b.prefix)
            b.margins.extend([None] * len(b.prefix))
        active = list(group)
        branch_c = self.grammar.constraint(Phase.BRANCH)
        close = self.aspd.branch_close
        while active:
            self._check_stop()
            for b in active:
                if b.carry is not None:  # drawn while verifying the branch's last draft
                    (tok, margin), b.carry = b.carry, None
                    if self.grammar.is_eog(tok):
                        tok, b.reason = close, "eos"
                    elif tok == close:
                        b.reason = "closed"
                    b.next_token = tok
                elif len(b.content) >= b.cap:
                    b.next_token, margin = self.aspd.branch_close, None
                    b.reason = "context" if context_short else "cap"
                else:
                    info = StreamInfo(block, b.index, b.content)
                    tok = self._sample(b.sampler, b.row, Phase.BRANCH, b.history, info)
                    margin = b.sampler.last_margin if self.record_margins else None
                    if self.grammar.is_eog(tok):
                        tok, b.reason = self.aspd.branch_close, "eos"
                    elif tok == self.aspd.branch_close:
                        b.reason = "closed"
                    b.next_token = tok
                b.margin = margin
            drafts = self._plan_branch_drafts(active, block)
            pend = self._fill_step(active, drafts, para_pos)
            try:
                self._decode()
            except KvFull:
                if not any(pend):
                    raise
                book.drop_drafts()  # no room for the drafts: the plain step
                pend = self._fill_step(active, [None] * len(active), para_pos)
                self._decode()
            still = []
            for b, d in zip(active, pend):
                t = b.next_token
                book.extend(b.seq, [t], [para_pos + b.next_pos_offset])
                b.tokens.append(t)
                b.margins.append(b.margin)
                b.history.append(t)
                if t == self.aspd.branch_close:
                    tail = b.text.flush()
                    if tail:
                        yield BranchDelta(block, b.index, tail)
                    yield BranchEnd(block, b.index, b.text.text, b.reason)
                    b.done = True
                else:
                    b.content.append(t)
                    if b.own is not None:
                        t0 = time.perf_counter()
                        b.own.extend((t,))
                        self.stats.speculate_s += time.perf_counter() - t0
                    delta = b.text.push(t)
                    if delta:
                        yield BranchDelta(block, b.index, delta)
                    if d is not None:
                        yield from self._verify_branch(b, d, block)
                    still.append(b)
            active = still

    def _fill_step(self, active: list[_Branch], drafts: list[DraftTree | None],
                   para_pos: int) -> list[PendingDraft | None]:
        """One step's batch: every active branch's next token, each with its draft tree if it has one."""
        ctx, close = self.ctx, self.aspd.branch_close
        ctx.batch.clear()
        pend: list[PendingDraft | None] = []
        for b, tree in zip(active, drafts):
            pos = para_pos + b.next_pos_offset
            if tree is not None:
                t0 = time.perf_counter()
                d = add_root_and_draft(ctx, self.book, b.next_token, pos, b.seq, tree)
                self.stats.speculate_s += time.perf_counter() - t0
                b.row = d.root_row
            else:
                d = None
                b.row = ctx.batch.add(b.next_token, pos, b.seq, b.next_token != close)
            pend.append(d)
        return pend

    # -- result ---------------------------------------------------------------
    def result(self, text_override: str | None = None) -> Result:
        text = b"".join(self.rendered).decode("utf-8", errors="replace") if text_override is None else text_override
        return Result(text=text, tokens=list(self.answer), finish_reason=self.finish_reason, mode=self.mode.value,
                      blocks=self.blocks, stats=self.stats, margins=list(self.margins) if self.record_margins else None)
