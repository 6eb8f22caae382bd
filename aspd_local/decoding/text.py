"""Incremental UTF-8 text from token pieces (a token may end in the middle of a character)."""

from __future__ import annotations

import codecs


class TextStream:
    def __init__(self, piece):
        self._piece = piece
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.parts: list[bytes] = []

    def push(self, token: int) -> str:
        b = self._piece(token)
        self.parts.append(b)
        return self._dec.decode(b)

    def flush(self) -> str:
        return self._dec.decode(b"", final=True)

    @property
    def text(self) -> str:
        return b"".join(self.parts).decode("utf-8", errors="replace")
