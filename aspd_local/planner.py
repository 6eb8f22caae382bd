"""The step plan: which rows of which requests go into the next ``llama_decode``.

One token budget per step, filled in order, as llama.cpp's server and vLLM's scheduler do:

1. every running request's mandatory rows (one per live stream, and forced rows such as branch
   prefixes), whole; a request whose rows no longer fit the batch waits for the next step;
2. prompt rows, first come first served, cut to fit what the budget leaves;
3. one greedy pass over every request's offered draft nodes, most likely first, while the step's
   expected tokens per millisecond grow by this machine's cost curve (by the margin ``min_gain``). The
   cost curve is for the whole decode, so the draft room belongs to the step, not to a request.

Nothing here depends on the order requests were resumed in: the plan sees every ask at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .step import Ask


@dataclass
class DraftPolicy:
    """How draft nodes are granted: ``cost_ms(n)`` (ms for one decode of n rows) ranks them against the
    step's cost; None grants every offered node that fits (the paper's rule, right where a bigger batch
    costs almost nothing). ``min_gain``: a draft must promise this many times the plain step's tokens per
    ms (the curve and the acceptance model are estimates, and proposing takes time the curve omits).
    ``max_rows``: drafts fill a step only up to the largest decode the curve was measured at (past it, the
    curve's straight-line extension is a guess, and a guess that is too low makes huge steps)."""

    cost_ms: Callable[[int], float] | None = None
    min_gain: float = 1.3
    max_rows: int | None = None  # the largest decode the curve was measured at: a step's drafts stay within it


@dataclass
class Claim:
    """One request's ask as the plan sees it: ``paths`` (sequence ids it may open for draft leaf paths)."""

    ask: Ask
    paths: int


def plan_step(claims: list[Claim], n_batch: int, budget: int, spare_cells: int,
              drafts: DraftPolicy) -> list[Claim]:
    """Grant rows to ``claims`` (in the order mandatory rows are placed); returns those that go into this
    decode, each ask's ``n_prefill`` and ``trees`` set. ``spare_cells``: cells that draft nodes may use."""
    placed: list[Claim] = []
    n = 0
    for c in claims:
        c.ask.grant_none()
        if n + len(c.ask.rows) > n_batch:
            continue
        placed.append(c)
        n += len(c.ask.rows)
    left = min(budget, n_batch) - n
    for c in placed:
        if c.ask.prefill:
            c.ask.n_prefill = take = max(0, min(len(c.ask.prefill), left))
            left -= take
            n += take
    placed = [c for c in placed if c.ask.rows or c.ask.n_prefill]
    _grant_drafts(placed, n, min(n_batch - n, max(0, left), spare_cells), drafts)
    return placed


def _grant_drafts(placed: list[Claim], base: int, room: int, policy: DraftPolicy) -> None:
    cands = []  # (-expected, claim, offer, node)
    for ci, c in enumerate(placed):
        if c.paths <= 0:
            continue
        for oi, offer in enumerate(c.ask.drafts):
            cands.extend((-e, ci, oi, i) for i, e in enumerate(offer.expected))
    if not cands or room <= 0 or base <= 0:
        return
    if policy.max_rows is not None:
        room = min(room, policy.max_rows - base)
    cands.sort()  # most likely first; a parent never ranks below its child (ties: expansion order)
    cands = cands[:max(0, room)]
    if policy.cost_ms is None:
        take = len(cands)
    else:
        cost = policy.cost_ms
        take, best, gain = 0, policy.min_gain * base / cost(base), float(base)
        for k, (neg_e, _, _, _) in enumerate(cands, 1):
            gain -= neg_e
            rate = gain / cost(base + k)
            if rate > best:
                take, best = k, rate
    chosen: dict[tuple[int, int], list[int]] = {}
    order: dict[int, list[tuple[int, int]]] = {}
    for _, ci, oi, i in cands[:take]:
        chosen.setdefault((ci, oi), []).append(i)
        order.setdefault(ci, []).append((oi, i))
    for ci, c in enumerate(placed):
        # at most ``paths`` leaf paths for the request: give up its least likely nodes first (the last node
        # of the order has no chosen child, so what stays is a tree)
        mine = order.get(ci, [])
        while mine and sum(_leaf_count(c.ask.drafts[oi].tree, chosen[(ci, oi)])
                           for oi in {o for o, _ in mine}) > c.paths:
            oi, i = mine.pop()
            chosen[(ci, oi)].remove(i)
        for oi, offer in enumerate(c.ask.drafts):
            nodes = chosen.get((ci, oi))
            if nodes:
                c.ask.trees[oi] = offer.tree.subset(sorted(nodes))


def _leaf_count(tree, nodes: list[int]) -> int:
    """Leaves of the subtree made of ``nodes`` (original indices)."""
    if not nodes:
        return 0
    parents = {tree.parents[i] for i in nodes}
    return sum(1 for i in nodes if i not in parents)
