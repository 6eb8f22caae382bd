"""The hybrid serial-parallel decoder (docs/format.md section 6) in three modes, as a step function.

- ``ar``: control tokens masked; the model answers as a plain autoregressive model.
- ``sequential``: the serial-parallel structure, branches decoded one after another.
- ``parallel``: all branches of a block in one ``llama_decode`` per step.

The decoder is a short phase machine (serial text, titles, block, join) over the one stream loop
(``streams.py``): serial text advances one stream a step, a block every open branch. It never calls
``llama_decode``; it yields :class:`~aspd_local.step.Ask`s and the scheduler decodes every request's
rows at once. ``sequential`` and ``parallel`` run the same code; only the grouping of branches into steps
differs, so with the same logits they choose the same tokens.

``max_tokens`` is a hard cap on the answer's tokens (control tokens, titles and branch prefixes
included): a block opens only where its titles, every branch's prefix and at least ``MIN_BRANCH`` tokens
per branch and its close still fit, and branches share what is left. The KV room a request may fill is
the same kind of limit: where it binds, the answer ends with finish reason ``context``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from ..aspd.encode import branch_prefix
from ..aspd.grammar import Constraint, Grammar, Phase, title_key
from ..aspd.tokens import AspdTokens
from ..events import BlockEnd, BlockInfo, BlockStart, Event, Result, SerialDelta, Stats
from ..kv import Lane
from ..llama.model import Model
from ..params import Caps, Mode
from ..sampling import LogitsProcessor, SamplingParams, StreamInfo, StreamSampler
from ..step import Ask, Cancelled, ContextFull, row
from ..suffix.index import TokenIndex
from .speculative import Speculator
from .stops import StopFilter, cut_at_stop
from .streams import Stream, StreamLoop
from .text import TextStream

MIN_BRANCH = 4  # content tokens each branch must have room for, or the block does not open
_PREFIX_SLACK = 2  # a title re-tokenized with its separator may take a token or two more


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
        self.loop = StreamLoop(lane, self.grammar, model.piece, self.stats, record_margins, speculator, self._room,
                               self._note, lambda: len(self.blocks), self._constraint)
        self._sep_len = len(model.tokenize(self.aspd.separator)) if self.aspd else 0
        self._budget = 0  # tokens the block being announced may take in all (set at its first <|title|>)
        self._branches: list[Stream] = []

    # -- budget ---------------------------------------------------------------
    def _left(self) -> int:
        """Tokens the answer may still take: its budget, and the KV cells its lane may still fill."""
        return min(self.caps.max_tokens - self.stats.tokens, self.lane.free_cells)

    def _end_reason(self) -> str:
        return "context" if self.lane.free_cells < self.caps.max_tokens - self.stats.tokens else "length"

    def _room(self, s: Stream) -> int:
        return s.cap - len(s.content) if s.is_branch else self._left()

    def _need(self, titles: list[list[int]]) -> int:
        """Tokens a block with these titles takes from its first <|title|> to its <|/para|>, at least."""
        per = sum((len(t) + 2) + (1 + len(t) + self._sep_len + _PREFIX_SLACK) + MIN_BRANCH + 1 for t in titles)
        return per + 2

    def _constraint(self, s: Stream, pending: int = 0) -> Constraint:
        """What stream ``s`` may sample (``pending``: tokens a draft walk accepted that are not counted yet)."""
        if s.phase == Phase.SERIAL and self.aspd is not None and self._need([[0]]) > self._left() - pending:
            return self.grammar.serial_only  # no block fits any more: the answer goes on serially
        return self.grammar.constraint(s.phase)

    # -- helpers --------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.should_stop():
            raise Cancelled()

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

    def _max_branches(self) -> int:
        return max(1, min(self.caps.max_titles, self.lane.free_seq_count + 1))

    # -- serial text and titles -------------------------------------------------
    def run(self, row: int) -> Iterator[Event | Ask]:
        """Decode an answer; ``row`` (in the lane's part) holds the logits of the last prompt token. Yields
        events and asks; the result is in ``self.result()`` afterwards."""
        lane = self.lane
        s = Stream(lane.home, StreamSampler(self.sampling, (0,), self.processors),
                   lane.tokens[-max(self.sampling.repeat_last_n, 1):], StreamInfo(None, None, []),
                   TextStream(self.model.piece), Phase.SERIAL, lane.tokens, row=row, stops=StopFilter(self.stop))
        t0 = time.perf_counter()
        try:
            yield from self._serial(s)
        except ContextFull:
            self.finish_reason = "context"
        finally:
            self.stats.serial_s += time.perf_counter() - t0 - self.stats.parallel_s
        tail = s.text.flush()
        out = s.stops.feed(tail) + s.stops.flush() if tail or s.stops.held else ""
        if out:
            yield SerialDelta(out)
        self.rendered.append(b"".join(s.text.parts))

    def _choose(self, s: Stream, titles: list[list[int]], cur: list[int]) -> bool:
        """Set the serial stream's next token; False when the answer ends before it."""
        aspd, forced = self.aspd, None
        if s.carry is not None:
            (s.next_token, s.margin), s.carry, s.forced = s.carry, None, False
            return True
        if s.phase == Phase.TITLE and (len(cur) >= self.caps.max_title_tokens
                                       or self._need(titles + [cur + [0]]) > self._budget):
            forced = aspd.title_close
        elif s.phase == Phase.AFTER_TITLE and (len(titles) >= self._max_branches()
                                               or self._need(titles + [[0]]) > self._budget):
            forced = aspd.para_open
        elif s.phase == Phase.SERIAL and self._left() <= 0:
            self.finish_reason = self._end_reason()
            return False
        if forced is not None:
            s.next_token, s.margin, s.forced = forced, None, True
        else:
            s.next_token, s.margin = self.loop.sample(s)
            s.forced = False
        return True

    def _serial(self, s: Stream) -> Iterator[Event | Ask]:
        aspd = self.aspd
        titles: list[list[int]] = []
        keys: set[str] = set()  # the block's titles so far, as title_key() sees them
        cur: list[int] = []
        while True:
            self._check_stop()
            if not self._choose(s, titles, cur):
                return
            tok = s.next_token
            if s.phase == Phase.SERIAL and self.grammar.is_eog(tok):
                self.finish_reason = "stop"
                return
            if s.phase == Phase.SERIAL and aspd is not None and tok == aspd.title_open:
                self._budget = self._left()
            if s.phase == Phase.TITLE and tok == aspd.title_close:
                key = title_key(self.model.detokenize(cur))
                if key in keys:
                    # Titles are unique within a block (docs/format.md section 2); a branch under a repeated title
                    # would decode its sibling's text again. The model is done listing: take the repeated
                    # title back and open the block with the titles before it.
                    self._retract(s, len(cur) + 1)
                    self.stats.repeated_titles += 1
                    s.next_token, s.margin, s.forced, s.phase = aspd.para_open, None, True, Phase.AFTER_TITLE
                    tok = aspd.para_open
                else:
                    keys.add(key)
            yield from self.loop.advance([s])
            if s.phase == Phase.SERIAL:
                if aspd is not None and tok == aspd.title_open:
                    s.phase, cur = Phase.TITLE, []
                elif s.stops.stopped:
                    s.carry = None
                    self.finish_reason, self.stopped = "stop", True
                    return
            elif s.phase == Phase.TITLE:
                if tok == aspd.title_close:
                    titles.append(cur)
                    s.phase = Phase.AFTER_TITLE
                else:
                    cur.append(tok)
            elif tok == aspd.title_open:
                s.phase, cur = Phase.TITLE, []
            else:  # <|para|>: fork, decode the branches, join
                t_par = time.perf_counter()
                self.rendered.append(b"".join(s.text.parts))
                s.text = TextStream(self.model.piece)
                row = yield from self._block(titles, s.history)
                self.stats.parallel_s += time.perf_counter() - t_par
                titles, keys = [], set()
                s.phase = Phase.SERIAL
                if row is None:
                    return
                s.row = row
                if any(b.reason == "stop" for b in self._branches):
                    self.finish_reason, self.stopped = "stop", True
                    return

    # -- a parallel block -----------------------------------------------------
    def _block(self, titles: list[list[int]], history: list[int]) -> Iterator[Event | Ask]:
        """Fork at <|para|>, decode every branch, join, decode <|/para|>. Returns the logits row of
        <|/para|>, or None when the answer ends here."""
        aspd, lane, model = self.aspd, self.lane, self.model
        block = len(self.blocks)
        para_pos = lane.next_pos - 1
        title_texts = [model.detokenize(t) for t in titles]
        prefixes = [branch_prefix(t, aspd, model.tokenize) for t in title_texts]
        n = len(prefixes)
        # Caps are set before any branch runs, so they do not depend on the schedule: the branches share
        # what is left of the budget and of the lane's cells equally, after their prefixes, closes and <|/para|>.
        fixed = sum(len(p) for p in prefixes) + n + 1
        by_tokens = self.caps.max_tokens - self.stats.tokens - fixed
        by_cells = lane.free_cells - fixed
        cap = min(self.caps.max_branch_tokens, min(by_tokens, by_cells) // n)
        context_short = by_cells < by_tokens and by_cells // n < self.caps.max_branch_tokens
        self._branches = []
        if cap < 0:  # not even the prefixes and closes fit (only where titles re-tokenize much longer)
            self.finish_reason = self._end_reason()
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
                   StreamInfo(block, k, []), TextStream(model.piece), Phase.BRANCH, [], head, index=k,
                   base_pos=para_pos + 1, cap=cap, prefix=prefixes[k],
                   stops=StopFilter(self.stop) if self.stop else None)
            for k in range(n)
        ]
        self._branches = branches
        if self.speculator is not None:
            for b in branches:
                b.own = TokenIndex(self.speculator.proposer.max_depth)
                b.own.open_sequence(b.prefix)
        full = False
        try:
            for group in ([branches] if self.mode == Mode.PARALLEL else [[b] for b in branches]):
                yield from self._run_group(group, block, context_short)
        except ContextFull:  # the branches end with what they wrote; so does the answer
            full, self.finish_reason = True, "context"
        for b in branches:
            if not b.ended:
                b.reason = "context"
                yield from self.loop.end_branch(b, block, b.index == len(self._branches) - 1)
        # Join: the home sequence gets every branch; the committed stream reads branch 0, 1, ... in order.
        lane.join(seqs)
        for b in branches:
            for t, m in zip(b.tokens, b.margins):
                self._note(t, m)
        texts = [b.visible_text for b in branches]
        self.blocks.append(BlockInfo(title_texts, texts, [len(b.tokens) for b in branches]))
        self.rendered.extend(b"".join(b.text.parts) for b in branches)
        yield BlockEnd(block, texts)
        history.extend(t for b in branches for t in b.tokens)
        if full:
            return None
        ask = Ask(rows=[row(aspd.para_close, para_pos + 1 + max(len(b.tokens) for b in branches), lane.home, True)])
        try:
            yield from self.loop.decode(ask)
        except ContextFull:
            self.finish_reason = "context"
            return None
        self._note(aspd.para_close, None)
        history.append(aspd.para_close)
        if self._left() <= 0:
            self.finish_reason = self._end_reason()
            return None
        return ask.at[0]

    def _run_group(self, group: list[Stream], block: int, context_short: bool) -> Iterator[Event | Ask]:
        # Branch prefill: every prefix in one step, logits only for each prefix's last token.
        ask = Ask()
        for b in group:
            ask.rows += [row(t, b.base_pos + j, b.seq, j == len(b.prefix) - 1) for j, t in enumerate(b.prefix)]
        yield from self.loop.decode(ask)
        end = 0
        for b in group:
            end += len(b.prefix)
            b.row = ask.at[end - 1]
            b.tokens.extend(b.prefix)
            b.margins.extend([None] * len(b.prefix))
        close = self.aspd.branch_close
        active = list(group)
        while active:
            self._check_stop()
            for b in active:
                b.forced = False
                if b.carry is not None:  # drawn while verifying the branch's last draft
                    (tok, b.margin), b.carry = b.carry, None
                elif len(b.content) >= b.cap:
                    tok, b.margin, b.forced = close, None, True
                    b.reason = "context" if context_short else "cap"
                else:
                    tok, b.margin = self.loop.sample(b)
                if self.grammar.is_eog(tok):
                    tok, b.reason = close, "eos"
                elif tok == close and not b.reason:
                    b.reason = "closed"
                b.next_token = tok
            yield from self.loop.advance(active)
            still = []
            for b in active:
                if b.next_token == close:
                    yield from self.loop.end_branch(b, block, b.index == len(self._branches) - 1)
                    continue
                if b.stops is not None and b.stops.stopped:
                    # a stop string closes the branch at its next step (the answer ends after the block)
                    b.reason, b.carry = "stop", (close, None)
                still.append(b)
            active = still

    # -- result ---------------------------------------------------------------
    def result(self) -> Result:
        text = b"".join(self.rendered).decode("utf-8", errors="replace")
        if self.stop:
            text, hit = cut_at_stop(text, self.stop)
            if hit and self.finish_reason != "cancelled":
                self.finish_reason, self.stopped = "stop", True
        return Result(text=text, tokens=list(self.answer), finish_reason=self.finish_reason, mode=self.mode.value,
                      blocks=self.blocks, stats=self.stats, margins=list(self.margins) if self.record_margins else None)


