"""OpenAI response objects: chat completions and text completions, whole or as stream chunks.

Extension: every chunk that carries a branch event has a top-level ``"aspd"`` object (see
docs/server.md); the last content chunk's ``"aspd"`` is ``{"type": "done", ...}`` with the engine's
statistics. Plain OpenAI clients ignore the field. An answer the server cut because it is stopping has
``finish_reason`` "cancelled" and an ``"error"`` note in that ``aspd`` object.
"""

from __future__ import annotations

import json
import time
import uuid

from ..events import Result


def finish_reason(result: Result | None, stopped: bool) -> str:
    if stopped or result is None:
        return "stop"
    return "length" if result.finish_reason in ("length", "context") else "stop"


def usage(prompt_tokens: int, result: Result | None) -> dict:
    n = len(result.tokens) if result is not None else 0
    return {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}


def summary(result: Result | None) -> dict:
    """The ``aspd`` object of a whole answer: mode, blocks, the engine's finish reason and statistics."""
    if result is None:
        return {"mode": None, "finish_reason": "cancelled", "blocks": [], "stats": None}
    out = {"mode": result.mode, "finish_reason": result.finish_reason,
           "blocks": [{"titles": b.titles, "texts": b.texts, "tokens": b.token_counts} for b in result.blocks],
           "stats": result.stats.as_dict()}
    if result.finish_reason == "context":  # (OpenAI's finish_reason says "length")
        out["note"] = "the context filled: the answer ends with what it wrote"
    return out


class Shaper:
    """Builds the objects of one response. ``kind`` is "chat" or "text"."""

    def __init__(self, kind: str, model: str, include_usage: bool = False):
        self.kind = kind
        self.model = model
        self.include_usage = include_usage
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())

    def _head(self, chunk: bool) -> dict:
        obj = "chat.completion.chunk" if chunk and self.kind == "chat" else \
            "chat.completion" if self.kind == "chat" else "text_completion"
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": None}

    def _choice(self, content: str | None, finish: str | None, chunk: bool, role: bool = False) -> dict:
        if self.kind == "text":
            return {"index": 0, "text": content or "", "logprobs": None, "finish_reason": finish}
        if chunk:
            delta = {"role": "assistant", "content": content or ""} if role else \
                ({"content": content} if content else {})
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None, "finish_reason": finish}

    # -- streaming ------------------------------------------------------------
    def chunk(self, content: str = "", aspd: dict | None = None, *, finish: str | None = None,
              first: bool = False) -> dict:
        d = self._head(True)
        d["choices"] = [self._choice(content, finish, True, role=first)]
        if self.include_usage:
            d["usage"] = None
        if aspd is not None:
            d["aspd"] = aspd
        return d

    def usage_chunk(self, use: dict) -> dict:
        d = self._head(True)
        d["choices"] = []
        d["usage"] = use
        return d

    # -- whole ----------------------------------------------------------------
    def response(self, content: str, finish: str, use: dict, result: Result | None,
                 error: str | None = None) -> dict:
        """A whole response; ``error``: a note on why it ended early (in ``aspd``)."""
        d = self._head(False)
        d["choices"] = [self._choice(content, finish, False)]
        d["usage"] = use
        d["aspd"] = summary(result)
        if error is not None:
            d["aspd"]["error"] = error
        return d


def sse(obj) -> bytes:
    """One server-sent event."""
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    return f"data: {data}\n\n".encode()
