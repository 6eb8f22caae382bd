"""Scoring: the log-probability of each token of a known continuation after a prefix.

The prefix is decoded into a request's home sequence after what it already holds (ASPD blocks in it
get their layout, as in any prompt); the continuation is decoded serially with logits on every row.
Afterwards the continuation is removed again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..aspd.tokens import AspdTokens
from ..kv import Lane
from ..step import Ask, row
from .prefill import prefill


def log_softmax_at(logits: np.ndarray, token: int) -> float:
    """log p(token) under the softmax of ``logits`` (float64 log-sum-exp)."""
    x = np.asarray(logits, dtype=np.float64)
    m = float(x.max())
    return float(x[token] - (m + np.log(np.exp(x - m).sum())))


def score_after(lane: Lane, aspd: AspdTokens | None, prefix: Sequence[int],
                continuation: Sequence[int]) -> Iterator[Ask]:
    """Per-token log-probabilities of ``continuation`` after the lane's tokens plus ``prefix`` (a step
    function, like the decoder). Afterwards the lane holds the prefix; the continuation is removed.

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
    at = yield from prefill(lane, prefix, aspd)
    after_prefix = len(lane.tokens)
    out: list[float] = [log_softmax_at(lane.logits(at), continuation[0])]
    pos0 = lane.next_pos
    todo = [row(t, pos0 + i, lane.home, True) for i, t in enumerate(continuation[:-1])]  # (the last one's
    while len(out) < len(continuation):                                                  # logits are not needed)
        ask = Ask(prefill=todo[len(out) - 1:])
        yield ask
        for i in range(ask.n_prefill):
            out.append(log_softmax_at(lane.logits(ask.prefill_at + i), continuation[len(out)]))
    lane.rollback(after_prefix)
    return out
