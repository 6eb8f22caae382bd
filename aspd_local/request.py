"""A request's handle and what the scheduler runs for it.

:class:`Request` is what ``Engine.submit`` returns: iterate it for its events (from any thread, or with
``async for``), wait for its result, or cancel it. :class:`Job` is what the scheduler runs: the prompt
tokens, the cells to reserve, and the step function (see ``aspd_local/step.py``).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .errors import AspdLocalError
from .events import Done, Event, Result

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
    ``budget`` (cells beyond the prompt the request may fill: its token budget),
    ``run(lane, reused, is_cancelled)`` a step function that yields events and ``Ask``s and returns the
    Result, and ``keep`` (how many of the home sequence's tokens to keep cached afterwards: "all",
    "prompt" or "none")."""

    tokens: list[int]
    budget: int
    run: Callable[..., Iterator]  # (lane, reused prompt tokens, is_cancelled) -> step function
    keep: str = "all"
    unstarted: Callable[[], object] | None = None  # the result of a request cancelled before it started
