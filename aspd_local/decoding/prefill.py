"""Decoding a known token stream into the KV cache: prompts, and histories that hold ASPD blocks.

A history with blocks is laid out exactly as the engine produced it (spec section 3): branches
get their own sequence ids and positions P + 1 + j, then are joined into sequence 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..aspd.layout import layout_of
from ..aspd.tokens import AspdTokens
from ..errors import ContextOverflowError
from ..kv import KvBook
from ..llama.context import Context


def _decode_rows(ctx: Context, book: KvBook, rows: list[tuple[int, int, int]], want_last: bool) -> int:
    """Decode (token, pos, seq) rows in chunks of the batch size; returns the batch row of the last token's logits."""
    cap = ctx.batch.capacity
    last_row = -1
    for start in range(0, len(rows), cap):
        chunk = rows[start:start + cap]
        ctx.batch.clear()
        for i, (t, p, s) in enumerate(chunk):
            last = want_last and start + i == len(rows) - 1
            r = ctx.batch.add(t, p, s, last)
            if last:
                last_row = r
        ctx.decode()
        for t, p, s in chunk:
            book.extend(s, [t], [p])
    return last_row


def prefill(ctx: Context, book: KvBook, tokens: Sequence[int], aspd: AspdTokens | None) -> int:
    """Append ``tokens`` to sequence 0 after what the book holds; return the logits row of the last token.

    Raises ContextOverflowError, with nothing decoded, when they do not fit.
    """
    if not tokens:
        raise ValueError("nothing to prefill")
    if len(tokens) + 1 > book.free_cells:
        raise ContextOverflowError(
            f"the prompt needs {len(tokens) + book.n_cells} tokens of context but the context holds {ctx.n_ctx}; "
            f"shorten it or raise n_ctx"
        )
    lay = layout_of(tokens, aspd, start=book.next_pos)
    if not lay.blocks:
        return _decode_rows(ctx, book, [(t, p, 0) for t, p in zip(tokens, lay.positions)], True)
    # Walk the stream: serial runs go to sequence 0; each block forks, decodes its branches, joins.
    row = -1
    i = 0
    n = len(tokens)
    for para_i, spans in lay.blocks:
        serial = [(tokens[j], lay.positions[j], 0) for j in range(i, para_i + 1)]
        if serial:
            row = _decode_rows(ctx, book, serial, para_i + 1 == n)
        seqs = [0] + [book.fork() for _ in spans[1:]]
        rows = [(tokens[j], lay.positions[j], seqs[k]) for k, (a, b) in enumerate(spans) for j in range(a, b)]
        if rows:
            row = _decode_rows(ctx, book, rows, spans[-1][1] == n)
        book.join(seqs)
        i = spans[-1][1] if spans else para_i + 1
    if i < n:
        row = _decode_rows(ctx, book, [(tokens[j], lay.positions[j], 0) for j in range(i, n)], True)
    return row
