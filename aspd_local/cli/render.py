"""Terminal rendering of an event stream: serial text as it comes, one live line per branch."""

from __future__ import annotations

import json
import shutil
import sys
import unicodedata

from ..events import BlockEnd, BlockStart, BranchDelta, BranchEnd, Done, SerialDelta


class TerminalRenderer:
    """Shows branches filling in live (one updating line each) on a terminal; on a pipe, prints each
    block once it has joined."""

    def __init__(self, out=None, live: bool | None = None):
        self.out = out or sys.stdout
        self.live = self.out.isatty() if live is None else live
        self.titles: list[str] = []
        self.texts: list[str] = []
        self.ended: list[bool] = []
        self.col = 0  # display column after the answer text written so far
        self.lead_col = 0  # where the text before an open block ended (0: at a line start)

    def _width(self) -> int:
        return max(20, shutil.get_terminal_size((100, 20)).columns)

    def _text(self, s: str) -> None:
        self.out.write(s)
        _, nl, tail = s.rpartition("\n")
        self.col = _cells(tail) if nl else self.col + _cells(s)

    def _line(self, k: int) -> str:
        width = self._width() - 1
        mark = "✓" if self.ended[k] else "…"
        head = f"  {mark} [{self.titles[k]}] "
        body = self.texts[k].replace("\n", " ⏎ ")
        room = width - len(head)
        if len(body) > room:
            body = "…" + body[-(room - 1):]
        return head + body

    def _redraw(self) -> None:
        n = len(self.titles)
        self.out.write(f"\x1b[{n}A")
        for k in range(n):
            self.out.write("\r\x1b[2K" + self._line(k) + "\n")
        self.out.flush()

    def handle(self, ev) -> None:
        w = self.out.write
        if isinstance(ev, SerialDelta):
            self._text(ev.text)
        elif isinstance(ev, BlockStart):
            self.titles = list(ev.titles)
            self.texts = [""] * len(ev.titles)
            self.ended = [False] * len(ev.titles)
            if self.live:
                self.lead_col = self.col % self._width()
                if self.col:  # the branch lines start on a line of their own
                    w("\n")
                for k in range(len(self.titles)):
                    w(self._line(k) + "\n")
        elif isinstance(ev, BranchDelta):
            self.texts[ev.branch] += ev.text
            if self.live:
                self._redraw()
        elif isinstance(ev, BranchEnd):
            self.ended[ev.branch] = True
            if self.live:
                self._redraw()
        elif isinstance(ev, BlockEnd):
            if self.live:  # fold the branch lines into the answer, right after the text before the block
                w(f"\x1b[{len(self.titles)}A\r\x1b[J")
                if self.lead_col:
                    w(f"\x1b[1A\x1b[{self.lead_col + 1}G")
            self._text("".join(ev.texts))
        elif isinstance(ev, Done):
            if not ev.result.text.endswith("\n"):
                w("\n")
            self.col = 0
        self.out.flush()


def _cells(s: str) -> int:
    """Terminal cells taken by ``s`` (wide East Asian characters take two, combining marks none)."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def event_json(ev) -> str:
    """One JSON line per event."""
    if isinstance(ev, SerialDelta):
        d = {"event": "serial", "text": ev.text}
    elif isinstance(ev, BlockStart):
        d = {"event": "block_start", "block": ev.block, "titles": ev.titles}
    elif isinstance(ev, BranchDelta):
        d = {"event": "branch", "block": ev.block, "branch": ev.branch, "text": ev.text}
    elif isinstance(ev, BranchEnd):
        d = {"event": "branch_end", "block": ev.block, "branch": ev.branch, "reason": ev.reason}
    elif isinstance(ev, BlockEnd):
        d = {"event": "block_end", "block": ev.block}
    elif isinstance(ev, Done):
        r = ev.result
        d = {"event": "done", "text": r.text, "finish_reason": r.finish_reason, "mode": r.mode,
             "blocks": [{"titles": b.titles, "texts": b.texts} for b in r.blocks], "stats": r.stats.as_dict()}
    else:  # pragma: no cover
        d = {"event": type(ev).__name__}
    return json.dumps(d, ensure_ascii=False)


def stats_line(r) -> str:
    s = r.stats
    return (f"[{r.mode}] {s.tokens} tokens in {s.wall_s - s.prompt_s:.2f}s ({s.tokens_per_s:.1f} tok/s), "
            f"{s.decode_calls} decode calls ({s.tokens_per_call:.2f} tok/call), {s.blocks} blocks, "
            f"{s.branches} branches, finish: {r.finish_reason}")
