"""Verifying draft trees in one ``llama_decode`` (docs/suffix-decoding.md sections 3-4).

Each leaf path of a tree gets its own sequence id, forked from the sequence the tree continues
(0 for serial text, the branch's id inside a block); every draft node goes into the batch once, at
position ``base + depth``, with the ids of all leaf paths through it, so it sees its ancestors and
never its siblings. The root (the token being decoded anyway) carries its own sequence and every
draft id. Several trees -- one per active branch -- can share one batch.

Acceptance samples the target at the root and follows the child equal to the draw, so the output is
exactly what plain decoding would produce, draw for draw (the same random numbers are consumed in
the same order): the draft only decides which logits are computed ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from ..kv import Lane
from ..suffix.acceptance import FIRST_AFTER_HIT, FIRST_AFTER_MISS, FIRST_NONE, AcceptanceModel, Shadow
from ..suffix.index import TokenIndex
from ..suffix.proposer import DraftTree


@dataclass
class PendingDraft:
    tree: DraftTree
    seqs: list[int]  # one per leaf path
    node_seqs: list[list[int]]  # per node: the leaf-path ids through it
    root_row: int
    rows: list[int]  # per node: its batch row
    base: int  # position of the root


def add_root_and_draft(lane: Lane, root: int, base: int, seq: int, tree: DraftTree) -> PendingDraft:
    """Add the root token (in ``seq``) and its draft tree to the lane's part of the next decode."""
    leaves = tree.leaves()
    seqs = lane.open_draft(len(leaves), seq)
    node_seqs: list[list[int]] = [[] for _ in range(len(tree))]
    for s, leaf in zip(seqs, leaves):
        for node in tree.path(leaf):
            node_seqs[node].append(s)
    part = lane.part
    root_row = part.add(root, base, [seq, *seqs], True)
    rows = [part.add(tree.tokens[i], base + tree.depths[i], node_seqs[i], True) for i in range(len(tree))]
    return PendingDraft(tree, seqs, node_seqs, root_row, rows, base)


def accept_walk(tree: DraftTree, root_row: int, rows: list[int], draw: Callable[[int], int],
                may_continue: Callable[[int], bool], may_draw: Callable[[], bool] = lambda: True
                ) -> tuple[list[int], int | None]:
    """Walk the tree by the target's own draws. Returns (accepted node indices, the next token or None).

    ``may_draw()`` says whether plain decoding would sample the next token at all (budget left);
    ``draw(row)`` samples the target at a batch row; ``may_continue(token)`` says whether the walk may
    accept ``token`` and go on (plain text, not a control token). The next token -- the draw that
    left the tree or stopped the walk -- has been sampled but not decoded; None when no draw was due.
    """
    accepted: list[int] = []
    node, row = -1, root_row
    while True:
        if not may_draw():
            return accepted, None
        tok = draw(row)
        child = tree.child(node, tok)
        if child is None or not may_continue(tok):
            return accepted, tok
        accepted.append(child)
        node, row = child, rows[child]


def settle(lane: Lane, d: PendingDraft, accepted: list[int]) -> None:
    """Keep the accepted path's cells in the root's sequence, free the rest."""
    keep = d.node_seqs[accepted[-1]][0] if accepted else None
    lane.close_draft(d.seqs, keep, [d.base + d.tree.depths[i] for i in accepted])


def _leaf_count(tree: DraftTree, nodes: list[int]) -> int:
    """Leaves of the subtree made of ``nodes`` (original indices)."""
    parents = {tree.parents[i] for i in nodes}
    return sum(1 for i in nodes if i not in parents)


@dataclass
class DraftRequest:
    """One stream's wish to speculate in the coming decode."""

    key: Hashable  # "serial" or (block, branch)
    context: Sequence[int]  # ends with the root token
    room: int  # the deepest draft node that can be useful (token budget, cap)
    extra: Sequence[TokenIndex] = field(default_factory=tuple)
    new_tokens: Sequence[int] = ()  # the stream's tokens since its previous request, ending with the root


class Speculator:
    """Suffix speculation for one request: the proposer, and the draft sizes the cost curve pays for.

    ``budget``: "cost" sizes the drafts of a step to maximise expected tokens per ms by the machine's
    cost curve and the acceptance model; "all" verifies every proposed node (the paper's rule, right
    where a bigger batch costs almost nothing). Either way every proposal is followed along the
    stream's actual tokens (``Shadow``), which is how the acceptance model learns.
    """

    def __init__(self, proposer, cost_ms: Callable[[int], float], acceptance: AcceptanceModel | None = None,
                 max_nodes: int = 32, budget: str = "cost", min_gain: float = 1.0):
        if budget not in ("cost", "all"):
            raise ValueError(f"budget must be 'cost' or 'all', got {budget!r}")
        self.min_gain = min_gain  # a draft must promise this many times the plain step's tokens per ms
        self.proposer = proposer
        self.cost_ms = cost_ms  # ms for one decode of n tokens on this machine
        self.acceptance = acceptance or AcceptanceModel()
        self.max_nodes = max_nodes
        self.budget = budget
        self._last_hit: dict[Hashable, bool] = {}
        self._shadows: dict[Hashable, list[Shadow]] = {}

    def begin(self, prompt: list[int]) -> None:
        self.proposer.begin(prompt)
        self._last_hit.clear()
        self._shadows.clear()

    def observe(self, token: int) -> None:
        self.proposer.observe((token,))

    def _stage(self, key: Hashable) -> int:
        hit = self._last_hit.get(key)
        return FIRST_NONE if hit is None else (FIRST_AFTER_HIT if hit else FIRST_AFTER_MISS)

    def _advance(self, key: Hashable, tokens: Sequence[int]) -> None:
        """Follow the stream's earlier proposals along its new tokens."""
        alive = self._shadows.get(key)
        for t in tokens:
            if not alive:
                break
            still = []
            for sh in alive:
                first = sh.node == -1
                ok = sh.step(self.acceptance, t)
                if first:
                    self._last_hit[key] = ok
                if ok:
                    still.append(sh)
            alive = still
        self._shadows[key] = alive or []

    def plan(self, context: list[int], max_nodes: int, max_paths: int,
             new_tokens: Sequence[int] = ()) -> DraftTree | None:
        """Serial text: the draft to verify with the next token, or None when plain decoding is faster."""
        return self.plan_step([DraftRequest("serial", context, max_nodes, (), new_tokens)], 1, max_nodes, max_paths)[0]

    def plan_step(self, requests: list[DraftRequest], base_tokens: int, max_nodes: int,
                  max_paths: int, other_rows: int = 0) -> list[DraftTree | None]:
        """Drafts for one decode of ``base_tokens`` tokens (the streams' next tokens): at most
        ``max_nodes`` draft nodes and ``max_paths`` leaf paths in all. ``other_rows``: rows other requests
        put into the same decode; a draft is sized by the marginal cost of its nodes on top of them."""
        out: list[DraftTree | None] = [None] * len(requests)
        trees: list[DraftTree | None] = []
        cands = []  # (-expected, request, node)
        for r, req in enumerate(requests):
            self._advance(req.key, req.new_tokens)
            stage = self._stage(req.key)
            tree = self.proposer.propose(req.context, self.max_nodes, req.extra)
            trees.append(tree)
            if tree is None:
                continue
            self._shadows.setdefault(req.key, []).append(Shadow(tree, stage))
            est = tree.probs if self.budget == "all" else self.acceptance.expected(tree, stage)
            cands.extend((-e, r, i) for i, e in enumerate(est) if tree.depths[i] <= req.room)
        max_nodes = min(max_nodes, self.max_nodes * max(1, len(requests)))
        if not cands or max_nodes <= 0 or max_paths <= 0:
            return out
        cands.sort()  # most likely first; a parent never ranks below its child (ties: expansion order)
        if self.budget == "all":
            take = min(len(cands), max_nodes)
        else:
            # tokens out of the whole decode per ms, the other requests' rows counted as one token each
            base = base_tokens + other_rows
            # (by a margin: the curve and the acceptance model are estimates, the proposer's time is not in
            # the curve, and a draft that only breaks even costs more than it brings)
            take, best_rate, gain = 0, self.min_gain * base / self.cost_ms(base), float(base)
            for k, (neg_e, _, _) in enumerate(cands[:max_nodes], 1):
                gain -= neg_e
                rate = gain / self.cost_ms(base + k)
                if rate > best_rate:
                    take, best_rate = k, rate
        chosen: list[list[int]] = [[] for _ in requests]
        for _, r, i in cands[:take]:
            chosen[r].append(i)
        # at most max_paths leaf paths in all: give up the least likely nodes first
        order = [(r, i) for _, r, i in cands[:take]]
        while order and sum(_leaf_count(trees[r], chosen[r]) for r in range(len(requests)) if chosen[r]) > max_paths:
            r, i = order.pop()
            chosen[r].remove(i)
        for r, nodes in enumerate(chosen):
            if nodes:
                out[r] = trees[r].subset(sorted(nodes))
        return out
