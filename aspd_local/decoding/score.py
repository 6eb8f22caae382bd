"""Scoring: the log-probability of each token of a known continuation after a prefix.

The prefix is decoded into sequence 0 after what the KV cache already holds (ASPD blocks in it get
their layout, as in any prompt); the continuation is decoded serially with logits on every row.
Afterwards the continuation is removed from the cache again (the prefix stays cached, so scoring
several continuations of one prefix decodes it once).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..aspd.tokens import AspdTokens
from ..errors import ContextOverflowError
from ..kv import KvBook
from ..llama.context import Context
from .prefill import prefill


def log_softmax_at(logits: np.ndarray, token: int) -> float:
    """log p(token) under the softmax of ``logits`` (float64 log-sum-exp)."""
    x = np.asarray(logits, dtype=np.float64)
    m = float(x.max())
    return float(x[token] - (m + np.log(np.exp(x - m).sum())))


def score_after(ctx: Context, book: KvBook, aspd: AspdTokens | None, prefix: Sequence[int],
                continuation: Sequence[int], keep_prefix: bool = True) -> list[float]:
    """Per-token log-probabilities of ``continuation`` after the cached tokens plus ``prefix``.
    Afterwards the cache holds the prefix too, or (``keep_prefix=False``) only what it held before.

    ``prefix`` must not be empty (its last token gives the first continuation token's logits).
    The continuation is serial text: ASPD control tokens in it are refused.
    """
    prefix, continuation = list(prefix), list(continuation)
    if not continuation:
        return []
    if not prefix:
        raise ValueError("scoring needs at least one prefix token after the cached ones")
    if aspd is not None and set(continuation) & set(aspd.ids):
        raise ValueError("the continuation to score holds ASPD control tokens; score serial text only")
    if len(prefix) + len(continuation) > book.free_cells:
        raise ContextOverflowError(
            f"scoring needs {book.n_cells + len(prefix) + len(continuation)} tokens of context but the context "
            f"holds {ctx.n_ctx}; raise n_ctx")
    start = book.mark()
    out: list[float] = []
    try:
        row = prefill(ctx, book, prefix, aspd)
        after_prefix = book.mark()
        try:
            out.append(log_softmax_at(ctx.logits(row), continuation[0]))
            todo = continuation[:-1]  # the last token's own logits are not needed
            cap = ctx.batch.capacity
            for a in range(0, len(todo), cap):
                chunk = todo[a:a + cap]
                pos0 = book.next_pos
                ctx.batch.clear()
                for i, t in enumerate(chunk):
                    ctx.batch.add(t, pos0 + i, 0, True)
                ctx.decode()
                book.commit_many(chunk, range(pos0, pos0 + len(chunk)))
                for i in range(len(chunk)):
                    out.append(log_softmax_at(ctx.logits(i), continuation[a + i + 1]))
        finally:
            book.rollback(after_prefix if keep_prefix else start)
    except BaseException:
        book.rollback(start)
        raise
    return out
