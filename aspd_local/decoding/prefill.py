"""Decoding a known token stream into a lane's home sequence: prompts, and histories that hold ASPD blocks.

A history with blocks is laid out exactly as the engine produced it (docs/format.md section 3): branches get
sequence ids of their own and positions P + 1 + j, then are joined into the home sequence. Prompts are
decoded in chunks of at most ``chunk`` tokens a step, so a long prompt does not stall other requests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..aspd.layout import layout_of
from ..aspd.tokens import AspdTokens
from ..errors import ContextOverflowError
from ..kv import Lane
from .hybrid import Step, decode


def decode_rows(lane: Lane, rows: list[tuple[int, int, int]], want_last: bool, chunk: int) -> Iterator[Step]:
    """Decode (token, pos, seq) rows, ``chunk`` a step; returns the row (in the lane's part) of the last
    token's logits."""
    last_row = -1
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        for i, (t, p, s) in enumerate(part):
            last = want_last and start + i == len(rows) - 1
            r = lane.part.add(t, p, s, last)
            if last:
                last_row = r
        yield from decode(lane)
    return last_row


def prefill(lane: Lane, tokens: Sequence[int], aspd: AspdTokens | None, chunk: int = 512) -> Iterator[Step]:
    """Append ``tokens`` to the home sequence after what it holds; returns the logits row of the last token.

    Raises ContextOverflowError, with nothing decoded, when they do not fit.
    """
    if not tokens:
        raise ValueError("nothing to prefill")
    if len(tokens) + 1 > lane.free_cells:
        raise ContextOverflowError(
            f"the prompt needs {len(tokens) + len(lane.tokens) + 1} tokens of context but only "
            f"{lane.free_cells + len(lane.tokens)} are free; shorten it or raise n_ctx")
    home = lane.home
    lay = layout_of(tokens, aspd, start=lane.next_pos)
    if not lay.blocks:
        return (yield from decode_rows(lane, [(t, p, home) for t, p in zip(tokens, lay.positions)], True, chunk))
    # Walk the stream: serial runs go to the home sequence; each block forks, decodes its branches, joins.
    row = -1
    i = 0
    n = len(tokens)
    for para_i, spans in lay.blocks:
        serial = [(tokens[j], lay.positions[j], home) for j in range(i, para_i + 1)]
        if serial:
            row = yield from decode_rows(lane, serial, para_i + 1 == n, chunk)
        seqs = [home] + [lane.fork() for _ in spans[1:]]
        rows = [(tokens[j], lay.positions[j], seqs[k]) for k, (a, b) in enumerate(spans) for j in range(a, b)]
        if rows:
            row = yield from decode_rows(lane, rows, spans[-1][1] == n, chunk)
        lane.join(seqs)
        i = spans[-1][1] if spans else para_i + 1
    if i < n:
        row = yield from decode_rows(lane, [(tokens[j], lay.positions[j], home) for j in range(i, n)], True, chunk)
    return row
