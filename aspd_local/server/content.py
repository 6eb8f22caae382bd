"""From engine events to what a client sees: the rendered answer as content deltas, plus the branch
events of the ``aspd`` extension field, with stop strings cut out.

Content follows the engine's rendered text (docs/format.md section 4): serial text as it is decoded; the first
branch of a block as it is decoded (it comes first in the answer); the other branches' texts, in title
order, when the block joins. So the content deltas concatenate to ``Result.text`` (cut at the first stop
string). Every branch's text also streams live in the extension events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..events import BlockEnd, BlockStart, BranchDelta, BranchEnd, Event, SerialDelta


@dataclass
class Piece:
    """One step for the client: content to append (may be empty) and/or an extension event."""

    content: str = ""
    aspd: dict | None = None


class ContentStream:
    """Feeds on engine events, one at a time; ``stopped`` turns true once a stop string appeared (the
    content ends right before it, and nothing more is produced)."""

    def __init__(self, stop: Sequence[str] = ()):
        self.stop = [s for s in stop if s]
        self.held = ""  # text that may be the start of a stop string
        self.text = ""  # all content produced so far
        self.stopped = False

    def feed(self, ev: Event) -> list[Piece]:
        if self.stopped:
            return []
        if isinstance(ev, SerialDelta):
            return self._content(ev.text, None)
        if isinstance(ev, BlockStart):
            return [Piece(aspd={"type": "block_start", "block": ev.block, "titles": list(ev.titles)})]
        if isinstance(ev, BranchDelta):
            aspd = {"type": "branch_delta", "block": ev.block, "branch": ev.branch, "text": ev.text}
            if ev.branch == 0:  # the first branch comes first in the answer: its text is content right away
                return self._content(ev.text, aspd)
            return [Piece(aspd=aspd)]
        if isinstance(ev, BranchEnd):
            return [Piece(aspd={"type": "branch_end", "block": ev.block, "branch": ev.branch, "reason": ev.reason})]
        if isinstance(ev, BlockEnd):  # the other branches follow the first one, in title order
            return self._content("".join(ev.texts[1:]), {"type": "block_end", "block": ev.block})
        return []

    def finish(self) -> list[Piece]:
        """At the end of the answer: release the text held back for a stop string that never came."""
        if self.stopped or not self.held:
            return []
        out, self.held = self.held, ""
        self.text += out
        return [Piece(out)]

    def _content(self, text: str, aspd: dict | None) -> list[Piece]:
        out = self._cut(text)
        return [Piece(out, aspd)] if out or aspd is not None else []

    def _cut(self, text: str) -> str:
        buf = self.held + text
        if not self.stop:
            out, self.held = buf, ""
        else:
            hits = [i for s in self.stop if (i := buf.find(s)) >= 0]
            if hits:
                out, self.held, self.stopped = buf[:min(hits)], "", True
            else:
                keep = max((k for s in self.stop for k in range(1, len(s)) if buf.endswith(s[:k])), default=0)
                out, self.held = buf[:len(buf) - keep], buf[len(buf) - keep:]
        self.text += out
        return out
