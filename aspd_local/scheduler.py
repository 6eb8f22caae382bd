"""The scheduler: every request's tokens in one ``llama_decode`` per step.

Requests wait in a bounded queue and are admitted into slots (at most ``n_slots`` at once). A slot is a
:class:`~aspd_local.kv.Lane` (a home sequence, a quota of sequence ids for branches and draft paths) with a
reservation of KV cells large enough for its prompt and its token budget, so an admitted request never
runs out of cells because of another. Each request is a step function (see ``aspd_local/step.py``): it
yields an :class:`~aspd_local.step.Ask` for each decode. One thread runs the loop, as llama.cpp's server
does with its slots: plan the step over every request's ask at once (``planner.py``: mandatory rows,
then prompt chunks cut to the token budget, then the drafts the cost curve pays for), fill the batch,
decode once (``batching.py``: a decode llama.cpp refuses is retried smaller before any request ends),
record the new cells, and resume each request to read its rows and ask again.

Finished conversations stay cached for prefix reuse (``prefix_cache.py``). A fault is pinned to its
request: an error while admitting, stepping, filling or releasing one request ends that request alone,
with every sequence id and cell it held freed; the others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .batching import decode_step
from .errors import DecodeError
from .events import Queued, Result
from .kv import KvCache, Lane
from .llama.context import Context
from .planner import Claim, DraftPolicy, plan_step
from .prefix_cache import PrefixCache
from .request import EngineClosedError, Job, QueueFullError, Request
from .step import Ask, Cancelled, ContextFull

log = logging.getLogger("aspd_local")

__all__ = ["EngineClosedError", "Job", "QueueFullError", "Request", "Scheduler"]


class _Slot:
    __slots__ = ("request", "lane", "gen", "ask", "prompt_len")

    def __init__(self, request: Request, lane: Lane, prompt_len: int):
        self.request, self.lane, self.prompt_len = request, lane, prompt_len
        self.gen = None
        self.ask: Ask | None = None  # what it wants from the next decode


class Scheduler:
    def __init__(self, ctx: Context, cache: KvCache, *, n_slots: int, seq_quota: int, max_queue: int,
                 max_cached: int, step_tokens: int = 256, drafts: DraftPolicy | None = None):
        self.ctx, self.cache = ctx, cache
        self.n_slots, self.seq_quota, self.max_queue = n_slots, seq_quota, max_queue
        self.step_tokens = step_tokens
        self.drafts = drafts or DraftPolicy()  # how draft nodes are granted (the engine sets its cost curve)
        self._waiting: list[Request] = []
        self._active: list[_Slot] = []
        self._calls: list[tuple[Callable, list]] = []
        self._cached = PrefixCache(cache, max_cached)  # finished conversations, for prefix reuse
        self._cv = threading.Condition()
        self._closed = False
        self._turn = 0  # rotates whose mandatory rows go first when the batch cannot take them all
        self.steps = 0  # decode calls made
        self._thread = threading.Thread(target=self._loop, name="aspd-scheduler", daemon=True)
        self._thread.start()

    # -- the callers' side ----------------------------------------------------
    def submit(self, job: Job) -> Request:
        req = Request(job)
        with self._cv:
            if self._closed:
                raise EngineClosedError("the engine is closed")
            # requests ahead of it that will not find a free slot (the scheduler may not have admitted
            # the latest ones yet)
            ahead = len(self._waiting) - max(0, self.n_slots - len(self._active))
            if ahead >= self.max_queue:
                raise QueueFullError(f"{ahead} requests are waiting already (the queue holds "
                                     f"{self.max_queue}); try again later")
            self._waiting.append(req)
            if ahead >= 0:
                req._emit(Queued(ahead))
            self._cv.notify()
        return req

    def call(self, fn: Callable[[], object]):
        """Run ``fn`` on the scheduler's thread between two steps (it may use the context and the cache
        freely, and must leave them as it found them); returns what it returns."""
        if threading.current_thread() is self._thread:
            return fn()
        box: list = []
        done = threading.Event()
        with self._cv:
            if self._closed:
                raise EngineClosedError("the engine is closed")
            self._calls.append((lambda: box.append(_attempt(fn)), [done]))
            self._cv.notify()
        done.wait()
        if not box:  # the engine closed before the call's turn came
            raise EngineClosedError("the engine is closed")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def cancel_all(self, close: bool = False) -> None:
        """Cancel every waiting and running request (``close``: and take no more)."""
        with self._cv:
            self._closed = self._closed or close
            for r in self._waiting + [s.request for s in self._active]:
                r.cancel()
            self._cv.notify()

    @property
    def busy(self) -> int:
        """Requests running or waiting."""
        with self._cv:
            return len(self._waiting) + len(self._active)

    @property
    def n_waiting(self) -> int:
        with self._cv:
            return len(self._waiting)

    def cached_lines(self) -> list[list[int]]:
        """The token streams kept in the cache, most recently used first."""
        return self.call(lambda: [list(self.cache.lines[s].tokens) for s in reversed(self._cached.seqs())])

    def clear_cached(self) -> None:
        """Forget every cached line; with nothing running, the whole cache is reset (llama.cpp places the
        next tokens from its first cell again)."""

        def clear():
            while self._cached:
                self._cached.evict()
            if not self._active:
                self.cache.clear()

        self.call(clear)

    def close(self) -> None:
        self.cancel_all(close=True)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def owned_seqs(self) -> set[int]:
        """Sequence ids that running requests and cached lines hold (call on the scheduler's thread)."""
        owned = set(self._cached.seqs())
        for s in self._active:
            owned |= s.lane.seqs
        return owned

    # -- the loop -------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                while not (self._waiting or self._active or self._calls or self._closed):
                    self._cv.wait()
                calls, self._calls = self._calls, []
                if self._closed and not self._active and not calls:
                    waiting, self._waiting = self._waiting, []
                    break
            for fn, (done,) in calls:
                fn()
                done.set()
            try:
                self._admit()
                self._step()
            except BaseException as e:  # a fault outside any one request (a bug): fail them all, keep serving
                log.exception("scheduler step failed")
                for s in list(self._active):
                    self._fail(s, e)
        for r in waiting:
            r._finish(None, EngineClosedError("the engine was closed before the request started"))
        for fn, (done,) in self._calls:
            done.set()

    # -- admission ------------------------------------------------------------
    def _admit(self) -> None:
        with self._cv:  # requests cancelled while they waited leave the queue at once
            gone = [r for r in self._waiting if r.cancelled]
            self._waiting = [r for r in self._waiting if not r.cancelled]
        for r in gone:
            if r.job.unstarted is not None:
                r._finish(r.job.unstarted())
            else:
                r._finish(None, Cancelled("cancelled before it started"))
        while True:
            with self._cv:
                if not self._waiting or len(self._active) >= self.n_slots:
                    return
                req = self._waiting[0]
            try:
                slot = self._open_slot(req)
            except BaseException as e:  # pinned: this request fails, the queue goes on
                log.debug("admitting a request failed", exc_info=e)
                with self._cv:
                    self._waiting.remove(req)
                req._finish(None, e)
                continue
            if slot is None:
                return  # not enough room now: it waits for a running request to end
            with self._cv:
                self._waiting.pop(0)
                self._active.append(slot)
            self._resume(slot)  # its first ask (a prompt chunk)

    def _open_slot(self, req: Request) -> _Slot | None:
        job, cache = req.job, self.cache
        src, n = self._cached.best_prefix(job.tokens)

        def short() -> bool:
            return (cache.unclaimed < len(job.tokens) - n + job.budget
                    or cache.free_seq_count < 1 + self.seq_quota)

        for seq in self._cached.seqs():  # least recently used first; the prefix it reuses goes last
            if not short():
                break
            if seq != src:
                self._cached.evict(seq)
        if short() and src is not None:
            self._cached.evict(src)
            src, n = None, 0
        need = len(job.tokens) - n + job.budget
        if (cache.unclaimed < need or cache.free_seq_count < 1) and self._active:
            return None  # room comes back when a running request ends
        # (alone, a request is admitted even when its reservation exceeds the context: the prompt fits, which
        # submit checked, and the answer ends with finish reason "context" where the cells run out)
        home = cache.alloc()
        lane = Lane(cache, home, self.seq_quota, min(n + need, self.ctx.n_ctx))
        slot = _Slot(req, lane, len(job.tokens))
        try:
            if src is not None and n:
                cache.copy_prefix(src, home, n)
                self._cached.touch(src)
            req.started = time.perf_counter()
            slot.gen = job.run(lane, n, req._cancel.is_set)
        except BaseException:
            self._release(slot, "none")
            raise
        return slot

    # -- one step -------------------------------------------------------------
    def _step(self) -> None:
        for s in [s for s in self._active if s.request.cancelled]:
            self._resume(s, Cancelled())
        if not self._active:
            return
        # cached lines give way to what running requests have reserved (plus room for draft trees)
        while self._cached and self.cache.unclaimed < 64:
            self._cached.evict()
        slots = [s for s in self._active if s.ask is not None]
        k = self._turn % max(1, len(slots))
        self._turn += 1
        order = slots[k:] + slots[:k]
        # cells draft nodes may use: nobody's reservation, and none of the rows this step must place
        spare = self.cache.unclaimed - sum(max(0, len(s.ask.rows) - s.lane.unfilled) for s in order)
        by_ask = {id(s.ask): s for s in order}
        claims = plan_step([Claim(s.ask, s.lane.free_seq_count) for s in order], self.ctx.n_batch,
                           self.step_tokens, spare, self.drafts)
        placed = [by_ask[id(c.ask)] for c in claims]
        calls, outcomes = decode_step(self.ctx, self.cache, [(s.lane, s.ask) for s in placed])
        self.steps += calls
        for s, outcome in zip(placed, outcomes):
            if outcome is None:
                continue  # not decoded this step: it keeps its ask and is planned again
            if isinstance(outcome, ContextFull):
                self._resume(s, outcome)  # its answer ends with what it wrote
            elif isinstance(outcome, BaseException):
                self._fail(s, outcome)
            else:
                self._resume(s)  # it reads its rows and asks again

    def _resume(self, s: _Slot, throw: BaseException | None = None) -> None:
        """Run a request's step function until it asks for its next decode, or ends."""
        s.ask = None
        try:
            item = s.gen.throw(throw) if throw is not None else next(s.gen)
            while not isinstance(item, Ask):
                s.request._emit(item)
                item = next(s.gen)
            if isinstance(throw, Cancelled):
                raise RuntimeError("a cancelled request asked for another step")
            if len(item.rows) > self.ctx.n_batch:  # could never be decoded: a bug, reported rather than waited on
                raise DecodeError(f"a step of {len(item.rows)} rows exceeds n_batch={self.ctx.n_batch}")
            if not item.rows and not item.prefill:
                raise RuntimeError("a request asked for an empty step")
            s.ask = item
        except StopIteration as stop:
            self._end(s, stop.value, None)
        except BaseException as e:
            self._fail(s, e)

    # -- the end of a request ----------------------------------------------------
    def _end(self, s: _Slot, result: Result | None, error: BaseException | None) -> None:
        keep = s.request.job.keep if error is None else "prompt"
        if getattr(result, "finish_reason", None) == "cancelled":
            keep = "prompt"
        self._release(s, keep)
        with self._cv:
            if s in self._active:
                self._active.remove(s)
        s.request._finish(result, error)

    def _fail(self, s: _Slot, e: BaseException) -> None:
        log.debug("request failed", exc_info=e)
        try:
            if s.gen is not None:
                s.gen.close()
        except BaseException:  # noqa: BLE001 - it ends anyway
            pass
        s.ask = None
        self._end(s, None, e)

    def _release(self, s: _Slot, keep: str) -> None:
        """Free a finished request's forks, drafts and reservation; keep its home sequence as a cached line
        (``keep``: all of it, its prompt, or none). Every step is tried even when one fails."""
        lane, errors = s.lane, []
        lane.part.clear()
        try:
            lane.close(keep_home=True)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        kept = False
        if keep != "none" and self._cached.max_lines > 0 and not errors:
            try:
                if keep == "prompt":
                    lane.rollback(lane.safe_prefix(s.prompt_len))
                kept = bool(lane.tokens)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
        if kept:
            self._cached.add(lane.home)
        else:
            try:
                self.cache.release(lane.home)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
        if errors:
            log.warning("releasing a request's cells failed (%s); its sequences were freed", errors[0])


def _attempt(fn):
    try:
        return True, fn()
    except BaseException as e:
        return False, e
