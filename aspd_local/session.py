"""A multi-turn conversation over an engine: each turn reuses the KV cache of the turns before it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from .chat import Message
from .events import Event, Result
from .params import GenerationParams
from .request import Request

if TYPE_CHECKING:
    from .engine import Engine


class ChatSession:
    """A multi-turn conversation. Each turn reuses the KV cache of the earlier turns: the prompt of
    turn n is the exact token stream of turns 1..n-1 plus the new message."""

    def __init__(self, engine: Engine, system: str | None = None, history: Iterable[Mapping | Message] = ()):
        self.engine = engine
        self.messages: list[Message] = []
        if system:
            self.messages.append(Message("system", system))
        self.messages.extend(Message.of(m) for m in history)
        self._tokens: list[int] = []

    def submit(self, text: str, params: GenerationParams | None = None, **kw) -> Request:
        """Queue the next turn; the conversation takes the answer when it completes."""
        msgs = self.messages + [Message("user", text)]
        tokens = self.engine.chat_format.prompt_tokens(msgs)

        def commit(result: Result) -> None:
            self.messages = msgs + [Message("assistant", result.text, list(result.tokens))]
            self._tokens = tokens + list(result.tokens)

        return self.engine._submit(tokens, GenerationParams.of(params, **kw), on_commit=commit)

    def stream(self, text: str, params: GenerationParams | None = None, **kw) -> Iterator[Event]:
        return iter(self.submit(text, params, **kw))

    def send(self, text: str, params: GenerationParams | None = None, **kw) -> Result:
        return self.submit(text, params, **kw).result()

    def tokens(self) -> list[int]:
        """The conversation's token stream after the last completed turn (what the KV cache holds)."""
        return list(self._tokens)
