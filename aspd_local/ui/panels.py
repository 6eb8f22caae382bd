"""HTML of the page's live parts, rendered from state: the branch panels of an open block (a row of
titled boxes, side by side) and the statistics strip. Element ids, classes and ``data-`` attributes are
stable: the browser test finds the panels by them."""

from __future__ import annotations

from html import escape

from .stats import StatsSnapshot
from .view import AnswerView


def branches_html(view: AnswerView | None) -> str:
    """One titled panel per branch of the open block; a short note between blocks."""
    if view is None or not view.branches:
        if view is not None and view.blocks_joined:
            n = view.blocks_joined
            note = f"{n} parallel block{'s' if n != 1 else ''} joined into the answer"
        else:
            note = "When the model opens a parallel block, one panel per branch appears here."
        return f'<div id="aspd-branches" class="aspd-branches aspd-idle" data-open="0"><p>{escape(note)}</p></div>'
    panels = []
    for k, b in enumerate(view.branches):
        state = "done" if b.done else "live"
        panels.append(
            f'<div class="aspd-branch aspd-{state}" data-branch="{k}" data-title="{escape(b.title, quote=True)}" '
            f'data-state="{state}"><div class="aspd-branch-title">{escape(b.title)}'
            f'<span class="aspd-branch-mark">{"✓" if b.done else "…"}</span></div>'
            f'<div class="aspd-branch-text">{escape(b.text.lstrip(chr(10)))}</div></div>')
    return (f'<div id="aspd-branches" class="aspd-branches" data-open="1" data-block="{view.block}">'
            + "".join(panels) + "</div>")


def _fmt(x: float | None, unit: str = "", digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}{unit}"


def stats_html(s: StatsSnapshot | None, curve_known: bool = True) -> str:
    """The strip: tokens/s, tokens per decode call, branches in flight, speedup vs plain decoding."""
    s = s or StatsSnapshot()
    speed_note = ("estimated: the same tokens decoded one per call, timed by this machine's measured cost "
                  "per decode call" if curve_known else "no cost curve measured for this model")
    items = [
        ("tps", "tokens/s", _fmt(s.tokens_per_s if s.tokens else None, digits=1)),
        ("tpc", "tokens / decode call", _fmt(s.tokens_per_call if s.tokens else None)),
        ("inflight", "branches in flight", str(s.in_flight)),
        ("speedup", "vs ar (est.)", _fmt(s.speedup, "×")),
    ]
    cells = "".join(f'<span class="aspd-stat" id="aspd-stat-{key}" title="{escape(label)}">'
                    f'<b>{escape(value)}</b> {escape(label)}</span>' for key, label, value in items)
    state = "final" if s.final else ("live" if s.tokens else "idle")
    tail = f"{s.tokens} tokens" + (f", {s.finish_reason}" if s.finish_reason else "")
    tail += "" if s.final else (" (live estimate)" if s.tokens else "")
    return (f'<div id="aspd-stats" class="aspd-stats" data-state="{state}" title="{escape(speed_note)}">'
            f'{cells}<span class="aspd-stat" id="aspd-stat-tail">{escape(tail)}</span></div>')
