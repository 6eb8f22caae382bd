"""The request queue: one thread runs requests on the one engine, in arrival order.

Each job reports to its ``sink`` (called from the worker thread): ``content.Piece`` items as the
answer grows, then one :class:`Finished` or :class:`Failed`. Cancelling a job (its client went away) stops
its generation at the next decode step, or skips it if it has not started; the engine rolls the KV
cache back either way, and the next job proceeds.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..engine import Engine
from ..events import Done, Result
from .content import ContentStream

log = logging.getLogger("aspd_local.server")


@dataclass
class Finished:
    result: Result | None  # None: the job was cancelled before it started
    content: str  # the whole content the client got
    stopped: bool  # a stop string ended it


@dataclass
class Failed:
    error: BaseException


@dataclass
class Job:
    tokens: list[int]  # the prompt
    engine_kwargs: dict  # for Engine.stream
    sink: Callable[[object], None]
    stop: list[str] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)


class EngineWorker:
    def __init__(self, engine: Engine, processors: Callable[[], list] | None = None):
        self.engine = engine
        self.processors = processors  # extra logits processors for every request (embedding, tests)
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._current: Job | None = None
        self._lock = threading.Lock()
        self._busy = 0  # jobs submitted and not yet finished
        self._thread = threading.Thread(target=self._loop, name="aspd-engine-worker", daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        """No job running or waiting."""
        with self._lock:
            return self._busy == 0

    def submit(self, job: Job) -> None:
        with self._lock:
            self._busy += 1
        self._jobs.put(job)

    def cancel(self, job: Job) -> None:
        job.cancelled.set()
        with self._lock:
            if self._current is job:
                self.engine.cancel()

    def close(self, timeout: float | None = None) -> None:
        self._jobs.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            with self._lock:
                self._current = job
            try:
                if job.cancelled.is_set():
                    job.sink(Finished(None, "", False))
                else:
                    self._run(job)
            except Exception as e:  # reported to the client; the worker carries on
                log.debug("request failed", exc_info=True)
                job.sink(Failed(e))
            finally:
                with self._lock:
                    self._current = None
                    self._busy -= 1

    def _run(self, job: Job) -> None:
        engine = self.engine
        content = ContentStream(job.stop)
        kw = dict(job.engine_kwargs)
        if self.processors is not None:
            kw["processors"] = list(self.processors())
        stream = engine.stream(job.tokens, keep=False, **kw)
        cancelling = False
        try:
            for ev in stream:
                if isinstance(ev, Done):
                    for piece in content.finish():
                        job.sink(piece)
                    job.sink(Finished(ev.result, content.text, content.stopped))
                    break
                for piece in content.feed(ev):
                    job.sink(piece)
                if not cancelling and (content.stopped or job.cancelled.is_set()):
                    engine.cancel()  # this thread runs the generation: the flag is read at its next step
                    cancelling = True
        finally:
            stream.close()


__all__ = ["EngineWorker", "Failed", "Finished", "Job"]
