"""The scheduler: every request's tokens in one ``llama_decode`` per step.

Requests wait in a bounded queue and are admitted into slots (at most ``n_slots`` at once). A slot is a
:class:`~aspd_local.kv.Lane` (a home sequence, a quota of sequence ids for branches and draft paths) and a
reservation of KV cells large enough for its prompt and its token budget, so an admitted request never
runs out of cells because of another. Each request is a step function (a generator, see
``decoding/hybrid.py``): it puts its rows into its part of the next batch and yields ``STEP``. One
thread runs the loop, as llama.cpp's server does with its slots: resume every request that has no part
waiting, gather the parts (serial tokens, every open branch of every block, prompt chunks, draft
trees) into one batch, decode once, record the new cells, and hand each request its rows.

Finished conversations stay in the cache as cached lines (their sequence ids and cells), so a request
whose prompt starts with one (the next chat turn, a repeated system prompt) decodes only the rest.
Cached lines are evicted least recently used first, when cells or sequence ids are needed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .decoding.hybrid import STEP, Cancelled
from .errors import AspdLocalError, DecodeError
from .events import Done, Event, Queued, Result
from .kv import KvCache, Lane, safe_prefix
from .llama.context import Context, KvFull

log = logging.getLogger("aspd_local")


class QueueFullError(AspdLocalError):
    """More requests are waiting than the queue holds."""


class EngineClosedError(AspdLocalError):
    """The engine was closed."""


_END = object()


class Request:
    """A submitted request: iterate it for its events (``Queued``, deltas, ..., ``Done``), or call
    :meth:`result`. Safe to use from any thread; ``async for`` works too. :meth:`cancel` stops it at its
    next step (or before it starts): its KV cells are freed, other requests are unaffected."""

    def __init__(self, job: "Job"):
        self.job = job
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._result: Result | None = None
        self._error: BaseException | None = None
        self._waiters: list[list] = []  # [event loop, asyncio.Event, armed] per async reader
        self._lock = threading.Lock()
        self.submitted = time.perf_counter()
        self.started: float | None = None  # when it was admitted into a slot

    # -- the scheduler's side -------------------------------------------------
    def _emit(self, item) -> None:
        self._events.put(item)
        with self._lock:  # wake only a reader that waits (one wake-up per drain, not one per event)
            armed = [w for w in self._waiters if w[2]]
            for w in armed:
                w[2] = False
        for loop, ev, _ in armed:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # that event loop is closed
                pass

    def _finish(self, result: Result | None, error: BaseException | None = None) -> None:
        self._result, self._error = result, error
        if isinstance(result, Result):  # (a scoring job's result is its list of log-probabilities)
            self._emit(Done(result))
        self._done.set()
        self._emit(_END)

    # -- the caller's side ----------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def has_pending(self) -> bool:
        """Events are waiting to be read (a reader may take them before it writes anything out)."""
        return not self._events.empty()

    def __iter__(self) -> Iterator[Event]:
        finished = False
        try:
            while True:
                item = self._events.get()
                if item is _END:
                    finished = True
                    return self._raise_error()
                yield item
        finally:
            if not finished:  # the consumer stopped early: nobody wants the rest
                self.cancel()

    def result(self, timeout: float | None = None) -> Result:
        """Wait for the request to finish and return its result (raises what it failed with)."""
        if not self._done.wait(timeout):
            raise TimeoutError("the request has not finished")
        self._raise_error()
        return self._result

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    async def __aiter__(self):
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        waiter = [loop, ready, False]  # armed: it waits for the next event
        with self._lock:
            self._waiters.append(waiter)
        finished = False
        try:
            while True:
                try:
                    item = self._events.get_nowait()
                except queue.Empty:
                    ready.clear()
                    with self._lock:
                        waiter[2] = True
                    if self._events.empty():  # (an event put before arming is seen here)
                        await ready.wait()
                    continue
                if item is _END:
                    finished = True
                    self._raise_error()
                    return
                yield item
        finally:
            with self._lock:
                self._waiters.remove(waiter)
            if not finished:
                self.cancel()


@dataclass
class Job:
    """What the scheduler runs for a request: ``tokens`` (whose longest cached prefix is reused),
    ``budget`` (cells beyond the prompt the request may fill: its token budget and the block closes),
    ``run(lane, reused, is_cancelled)`` a step function that yields events and ``STEP`` and returns the
    Result, and ``keep`` (how many of the home sequence's tokens to keep cached afterwards: "all",
    "prompt" or "none")."""

    tokens: list[int]
    budget: int
    run: Callable[[Lane, int, Callable[[], bool]], Iterator]
    keep: str = "all"
    unstarted: Callable[[], object] | None = None  # the result of a request cancelled before it started


class _Slot:
    __slots__ = ("request", "lane", "gen", "ready", "reserve", "prompt_len", "last_rows")

    def __init__(self, request: Request, lane: Lane, reserve: int, prompt_len: int):
        self.request, self.lane, self.reserve, self.prompt_len = request, lane, reserve, prompt_len
        self.gen = None
        self.ready = False  # its part is built and waits for a decode
        self.last_rows = 0  # its rows in the last decode


class Scheduler:
    def __init__(self, ctx: Context, cache: KvCache, *, n_slots: int, seq_quota: int, max_queue: int,
                 max_cached: int):
        self.ctx, self.cache = ctx, cache
        self.n_slots, self.seq_quota, self.max_queue, self.max_cached = n_slots, seq_quota, max_queue, max_cached
        self._waiting: list[Request] = []
        self._active: list[_Slot] = []
        self._calls: list[tuple[Callable, list]] = []
        self._cached: OrderedDict[int, None] = OrderedDict()  # cached lines, least recently used first
        self._cv = threading.Condition()
        self._closed = False
        self._turn = 0  # rotates which request's part goes into a full batch first
        self._last_batch = 0  # rows of the last decode
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

    def cancel_all(self) -> None:
        with self._cv:
            for r in self._waiting:
                r.cancel()
            for s in self._active:
                s.request.cancel()
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
        return self.call(lambda: [list(self.cache.lines[s].tokens) for s in reversed(self._cached)])

    def clear_cached(self) -> None:
        """Forget every cached line; with nothing running, the whole cache is reset (llama.cpp places the
        next tokens from its first cell again)."""

        def clear():
            while self._cached:
                self._evict()
            if not self._active:
                self.cache.clear()

        self.call(clear)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            for r in self._waiting:
                r.cancel()
            for s in self._active:
                s.request.cancel()
            self._cv.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

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
            except BaseException as e:  # a fault in the loop itself: fail every request, keep serving
                log.exception("scheduler step failed")
                for s in list(self._active):
                    self._fail(s, e)
        for r in waiting:
            r._finish(None, EngineClosedError("the engine was closed before the request started"))
        for fn, (done,) in self._calls:
            done.set()

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
            slot = self._open_slot(req)
            if slot is None:
                return  # not enough room now: it waits for a running request to end
            with self._cv:
                self._waiting.pop(0)
                self._active.append(slot)

    def _open_slot(self, req: Request) -> _Slot | None:
        job, cache = req.job, self.cache
        src, n = self._best_prefix(job.tokens)

        def short() -> bool:
            return (self._available() < len(job.tokens) - n + job.budget
                    or cache.free_seq_count < 1 + self.seq_quota)

        for seq in list(self._cached):  # least recently used first; the prefix it reuses goes last
            if not short():
                break
            if seq != src:
                self._evict(seq)
        if short() and src is not None:
            self._evict(src)
            src, n = None, 0
        need = len(job.tokens) - n + job.budget
        if self._available() < need and self._active:
            return None  # room comes back when a running request ends
        if cache.free_seq_count < 1:
            return None if self._active else self._refuse(req, "no sequence id is free")
        if len(job.tokens) - n + 1 > self._available():
            if self._active:
                return None
            return self._refuse(req, f"the prompt has {len(job.tokens)} tokens but the context holds "
                                     f"{self.ctx.n_ctx} (one more is needed to answer); shorten it or raise n_ctx")
        home = cache.alloc()
        if src is not None and n:
            cache.copy_prefix(src, home, n)
            self._cached.move_to_end(src)
        lane = Lane(cache, home, self.seq_quota)
        slot = _Slot(req, lane, min(n + need, self.ctx.n_ctx), len(job.tokens))
        req.started = time.perf_counter()
        slot.gen = job.run(lane, n, req._cancel.is_set)
        return slot

    def _refuse(self, req: Request, why: str) -> None:
        from .errors import ContextOverflowError

        with self._cv:
            self._waiting.remove(req)
        req._finish(None, ContextOverflowError(why))
        return None

    def _best_prefix(self, tokens: list[int]) -> tuple[int | None, int]:
        best, best_n = None, 0
        limit = len(tokens) - 1  # the last prompt token is always decoded for its logits
        for seq in self._cached:
            line = self.cache.lines[seq]
            m, lim = 0, min(limit, len(line.tokens))
            lt = line.tokens
            while m < lim and lt[m] == tokens[m]:
                m += 1
            m = safe_prefix(line.positions, m)
            if m > best_n:
                best, best_n = seq, m
        return best, best_n

    def _available(self, exclude: _Slot | None = None) -> int:
        """Free cells less what running requests have reserved and not filled yet."""
        unused = sum(max(0, s.reserve - _held(s.lane)) for s in self._active if s is not exclude)
        return self.cache.free_cells - unused

    def _evict(self, seq: int | None = None) -> None:
        """Forget a cached line (the least recently used one by default)."""
        if seq is None:
            seq = next(iter(self._cached))
        del self._cached[seq]
        self.cache.release(seq)

    def _keep(self, slot: _Slot, keep: str) -> None:
        """Release a finished slot's sequences; keep its home as a cached line (``keep``: all of it, its
        prompt, or none)."""
        lane = slot.lane
        lane.rollback(len(lane.tokens))  # forks and drafts go
        if keep == "prompt":
            lane.rollback(safe_prefix(lane.positions, slot.prompt_len))
        if keep == "none" or not lane.tokens or self.max_cached <= 0:
            self.cache.release(lane.home)
            return
        self._cached[lane.home] = None
        while len(self._cached) > self.max_cached:
            self._evict()

    # -- one step -------------------------------------------------------------
    def _step(self) -> None:
        if not self._active:
            return
        # cached lines give way to what running requests have reserved (plus room for draft trees)
        while self._cached and self._available() < 64:
            self._evict()
        # start the requests admitted since the last step (every other one has its part ready already)
        for s in list(self._active):
            if not s.ready:
                self._advance(s)
        ready = [s for s in self._active if s.ready]
        ctx, batch = self.ctx, self.ctx.batch
        batch.clear()
        placed = []
        k = self._turn % max(1, len(ready))  # who goes first when the batch cannot take every part
        self._turn += 1
        for s in ready[k:] + ready[:k]:
            if s.request.cancelled:
                self._throw(s)
            elif s.lane.part.n > ctx.n_batch:  # could never be decoded: a bug, reported rather than waited on
                self._fail(s, DecodeError(f"a step of {s.lane.part.n} rows exceeds n_batch={ctx.n_batch}"))
            elif batch.n + s.lane.part.n <= ctx.n_batch:
                s.lane.part.place(batch)
                placed.append(s)
        if not placed:
            return
        t0 = time.perf_counter()
        try:
            ctx.decode(batch)
        except KvFull:
            self._decode_each(placed)
            return
        dt = time.perf_counter() - t0
        self.steps += 1
        for s in placed:
            self._done_decoding(s, batch.n, dt)
        # each request reads its rows now, before anything else is decoded, and builds its next part
        for s in placed:
            self._advance(s)

    def _decode_each(self, placed: list[_Slot]) -> None:
        """The merged batch found no room: decode the parts one at a time, each request reading its rows
        before the next decode (a part that does not fit alone is reported to its request)."""
        ctx, batch = self.ctx, self.ctx.batch
        for s in placed:
            part = s.lane.part
            batch.clear()
            part.place(batch)
            t0 = time.perf_counter()
            try:
                ctx.decode(batch)
            except KvFull:
                part.clear()
                part.failed = True
                s.ready = False
            else:
                self.steps += 1
                self._done_decoding(s, batch.n, time.perf_counter() - t0)
            self._advance(s)

    def _done_decoding(self, s: _Slot, n: int, dt: float) -> None:
        part = s.lane.part
        self.cache.record(part)
        s.last_rows, self._last_batch = part.n, n
        part.batch_n, part.decode_s = n, dt
        part.clear()
        s.ready = False

    def _advance(self, s: _Slot) -> None:
        """Run a request's step function until its next part is ready, or it ends."""
        cache = self.cache
        cache.step_rows = sum(o.lane.part.n for o in self._active if o.ready and o is not s)
        # what the others will put into the coming decode: what they put into the last one (the parts
        # built after this one are not known yet), at least what they have put in already
        cache.other_rows = max(cache.step_rows, self._last_batch - s.last_rows)
        cache.claimed = cache.step_rows + sum(max(0, o.reserve - _held(o.lane)) for o in self._active if o is not s)
        try:
            while True:
                item = next(s.gen)
                if item is STEP:
                    s.ready = True
                    return
                s.request._emit(item)
        except StopIteration as stop:
            self._end(s, stop.value, None)
        except BaseException as e:
            self._fail(s, e)
        finally:
            cache.step_rows = cache.claimed = cache.other_rows = 0

    def _throw(self, s: _Slot) -> None:
        """Stop a cancelled request that waits for a decode: its part is dropped, its step function told."""
        s.lane.part.clear()
        s.ready = False
        try:
            item = s.gen.throw(Cancelled())
            while True:
                if item is STEP:  # it wants to go on after all: that is a bug in the step function
                    raise RuntimeError("a cancelled request asked for another step")
                s.request._emit(item)
                item = next(s.gen)
        except StopIteration as stop:
            self._end(s, stop.value, None)
        except BaseException as e:
            self._fail(s, e)

    def _end(self, s: _Slot, result: Result | None, error: BaseException | None) -> None:
        keep = s.request.job.keep if error is None else "prompt"
        if getattr(result, "finish_reason", None) == "cancelled":
            keep = "prompt"
        try:
            self._keep(s, keep)
        except Exception:  # never leave a slot behind
            log.exception("releasing a slot failed")
            self.cache.release(s.lane.home)
        with self._cv:
            if s in self._active:
                self._active.remove(s)
        s.request._finish(result, error)

    def _fail(self, s: _Slot, e: BaseException) -> None:
        log.debug("request failed", exc_info=e)
        try:
            s.gen.close()
        except BaseException:
            pass
        s.lane.part.clear()
        s.ready = False
        self._end(s, None, e)


def _held(lane: Lane) -> int:
    lines = lane.cache.lines
    return len(lane.line.cells) + sum(len(lines[q].cells) for q in lane._forks if q in lines)


def _attempt(fn):
    try:
        return True, fn()
    except BaseException as e:
        return False, e
