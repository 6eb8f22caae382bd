"""Stop strings: the answer ends right before the first one, in its rendered text.

The filter holds back text that could be the start of a stop string, so the deltas a stream hands
out concatenate to the text up to (not including) the first stop string.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopFilter:
    def __init__(self, stop: Sequence[str] = ()):
        self.stop = [s for s in stop if s]
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of ``text`` (after what was held) that is safe to hand out; sets ``stopped`` on a hit."""
        if self.stopped:
            return ""
        buf = self.held + text
        if not self.stop:
            self.held = ""
            return buf
        hits = [i for s in self.stop if (i := buf.find(s)) >= 0]
        if hits:
            self.held, self.stopped = "", True
            return buf[:min(hits)]
        keep = max((k for s in self.stop for k in range(1, len(s)) if buf.endswith(s[:k])), default=0)
        self.held = buf[len(buf) - keep:]
        return buf[:len(buf) - keep]

    def flush(self) -> str:
        out, self.held = ("" if self.stopped else self.held), ""
        return out


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether there was one."""
    hits = [i for s in stop if s and (i := text.find(s)) >= 0]
    return (text[:min(hits)], True) if hits else (text, False)
