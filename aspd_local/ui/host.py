"""The one engine behind the page: which model it runs, the models it can switch to, who is generating
now (so that a user's stop button stops only that user's answer), and this machine's cost curve for the
speedup estimate."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ..chat import Message
from ..engine import Engine
from ..events import Done, Event
from ..request import Request

log = logging.getLogger("aspd_local")

Loader = Callable[[str], Engine]


@dataclass
class Conversation:
    """One user's chat as the engine sees it: completed turns (assistant turns with their exact tokens),
    for the model they were made with."""

    model: str | None = None
    messages: list[Message] = field(default_factory=list)


class EngineHost:
    """Holds the page's engine. ``engine`` is an Engine, or a loader ``path -> Engine`` that the model
    picker uses (the first of ``models`` is loaded at once)."""

    def __init__(self, engine: Engine | Loader, models: Sequence[str] = (), measure_cost: bool = True):
        self._loader: Loader | None = None if isinstance(engine, Engine) else engine
        self.models = list(dict.fromkeys(models))
        if isinstance(engine, Engine):
            self.engine = engine
            self.model = engine.model.path
        else:
            if not self.models:
                raise ValueError("a loader needs at least one model to load")
            self.model = self.models[0]
            self.engine = self._loader(self.model)
        if self.model not in self.models:
            self.models.insert(0, self.model)
        self.measure_cost = measure_cost
        self.curve = self._curve()
        self._running: dict[str, Request] = {}  # session -> its answer being generated (tabs answer at once)
        self._state = threading.Lock()

    @property
    def can_switch(self) -> bool:
        return self._loader is not None

    def _curve(self) -> dict[int, float] | None:
        if not self.measure_cost:
            return None
        try:
            return self.engine.cost_curve()  # measured once per model and thread count, then read from disk
        except Exception as e:  # the estimate is optional; the chat works without it
            log.warning("no cost curve for the speedup estimate: %s", e)
            return None

    def decode_calls(self) -> int:
        return self.engine.ctx.decode_calls

    # -- answers ------------------------------------------------------------
    def stream(self, session: str, conv: Conversation, text: str, **kw) -> Iterator[Event]:
        """The events of one answer in ``conv``; when it completes, ``conv`` holds the new turn.
        Closing the iterator cancels the answer. Several sessions answer at once (the engine's slots);
        while this one waits for a slot its first event is ``Queued``."""
        if conv.model != self.model:  # another model's tokens mean nothing here: keep the text only
            conv.messages = [Message(m.role, m.content) for m in conv.messages]
            conv.model = self.model
        chat = self.engine.session(history=conv.messages)
        handle = chat.submit(text, **kw)
        with self._state:
            old = self._running.get(session)
            self._running[session] = handle
        if old is not None:
            old.cancel()
        stream = iter(handle)
        try:
            for ev in stream:
                if isinstance(ev, Done) and ev.result.finish_reason != "cancelled":
                    conv.messages = list(chat.messages)
                yield ev
        finally:
            stream.close()  # a consumer that went away cancels the request; its cells are freed
            with self._state:
                if self._running.get(session) is handle:
                    del self._running[session]

    def stop(self, session: str) -> bool:
        """Stop ``session``'s answer if one is being generated (at the engine's next step)."""
        with self._state:
            handle = self._running.get(session)
        if handle is None:
            return False
        handle.cancel()
        return True

    # -- models -------------------------------------------------------------
    def switch(self, model: str) -> None:
        """Serve ``model`` from now on (the page runs this in its queue, so no answer is running). On
        failure the current model stays and the error is raised."""
        if model == self.model:
            return
        if self._loader is None:
            raise RuntimeError("this page was given one engine: it cannot switch models")
        new = self._loader(model)
        old, self.engine, self.model = self.engine, new, model
        if model not in self.models:
            self.models.append(model)
        self.curve = self._curve()
        old.close()

    def close(self) -> None:
        self.engine.close()


def model_label(path: str) -> str:
    try:
        size = f"{os.path.getsize(path) / 2**20:.0f} MiB"
    except OSError:
        size = "not built yet"
    return f"{os.path.basename(path)} ({size})"
