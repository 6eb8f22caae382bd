"""Decoding a known token stream into a lane's home sequence: prompts, and histories that hold ASPD blocks.

A history with blocks is laid out exactly as the engine produced it (docs/format.md section 3): branches get
sequence ids of their own and positions P + 1 + j, then are joined into the home sequence. Prompts are
decoded in chunks that the step plan cuts to fit its token budget, so a long prompt does not stall other requests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..aspd.layout import layout_of
from ..aspd.tokens import AspdTokens
from ..kv import Lane
from ..step import Ask, Row, row


def decode_rows(rows: list[Row]) -> Iterator[Ask]:
    """Decode known rows, as many a step as the step plan grants; returns the row (in the lane's part) of the
    last row's logits (-1 when the last row wants none)."""
    done, last = 0, -1
    while done < len(rows):
        ask = Ask(prefill=rows[done:])
        yield ask
        done += ask.n_prefill
        last = ask.prefill_at + ask.n_prefill - 1
    return last if rows and rows[-1].logits else -1


def prefill(lane: Lane, tokens: Sequence[int], aspd: AspdTokens | None) -> Iterator[Ask]:
    """Append ``tokens`` to the home sequence after what it holds; returns the logits row of the last token.
    (Whether they fit was checked when the request was admitted: its reservation holds them.)"""
    if not tokens:
        raise ValueError("nothing to prefill")
    home = lane.home
    lay = layout_of(tokens, aspd, start=lane.next_pos)
    if not lay.blocks:
        return (yield from decode_rows([row(t, p, home, i == len(tokens) - 1)
                                        for i, (t, p) in enumerate(zip(tokens, lay.positions))]))
    # Walk the stream: serial runs go to the home sequence; each block forks, decodes its branches, joins.
    at = -1
    i = 0
    n = len(tokens)
    for para_i, spans in lay.blocks:
        serial = [row(tokens[j], lay.positions[j], home, j == n - 1) for j in range(i, para_i + 1)]
        if serial:
            at = yield from decode_rows(serial)
        seqs = [home] + [lane.fork() for _ in spans[1:]]
        rows = [row(tokens[j], lay.positions[j], seqs[k], j == n - 1) for k, (a, b) in enumerate(spans)
                for j in range(a, b)]
        if rows:
            at = yield from decode_rows(rows)
        lane.join(seqs)
        i = spans[-1][1] if spans else para_i + 1
    if i < n:
        at = yield from decode_rows([row(tokens[j], lay.positions[j], home, j == n - 1) for j in range(i, n)])
    return at
