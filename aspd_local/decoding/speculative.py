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
from ..step import Row
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


def add_root_and_draft(lane: Lane, root: Row, tree: DraftTree) -> PendingDraft:
    """Add the root row and its draft tree to the lane's part of the next decode (the root row in its own
    sequence and in every leaf path's)."""
    seq, base = root.seqs[0], root.pos
    leaves = tree.leaves()
    seqs = lane.open_draft(len(leaves), seq)
    node_seqs: list[list[int]] = [[] for _ in range(len(tree))]
    for s, leaf in zip(seqs, leaves):
        for node in tree.path(leaf):
            node_seqs[node].append(s)
    part = lane.part
    root_row = part.add(root.token, base, [*root.seqs, *seqs], True)
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


@dataclass
class DraftRequest:
    """One stream's wish to speculate in the coming decode."""

    key: Hashable  # "serial" or (block, branch)
    context: Sequence[int]  # ends with the root token
    room: int  # the deepest draft node that can be useful (token budget, cap)
    extra: Sequence[TokenIndex] = field(default_factory=tuple)
    new_tokens: Sequence[int] = ()  # the stream's tokens since its previous request, ending with the root


class Speculator:
    """Suffix speculation for one request: proposes a draft tree for a stream's next step, estimates what
    each node is worth, and follows every proposal along the stream's actual tokens (``Shadow``), which
    is how the acceptance model learns. Which nodes are verified is the step plan's choice
    (``aspd_local/planner.py``): it ranks every request's offers against the whole decode.

    ``budget``: "cost" estimates nodes by the acceptance model; "all" by the proposer's own
    probabilities (every node is verified then).
    """

    def __init__(self, proposer, acceptance: AcceptanceModel | None = None, max_nodes: int = 32,
                 budget: str = "cost"):
        if budget not in ("cost", "all"):
            raise ValueError(f"budget must be 'cost' or 'all', got {budget!r}")
        self.proposer = proposer
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

    def propose(self, req: DraftRequest) -> tuple[DraftTree, list[float]] | None:
        """The draft a stream offers for its next step and each node's expected tokens (nodes deeper than
        ``req.room`` are left out), or None when nothing matches."""
        self._advance(req.key, req.new_tokens)
        stage = self._stage(req.key)
        tree = self.proposer.propose(req.context, self.max_nodes, req.extra)
        if tree is None:
            return None
        self._shadows.setdefault(req.key, []).append(Shadow(tree, stage))
        keep = [i for i in range(len(tree)) if tree.depths[i] <= req.room]
        if not keep:
            return None
        est = tree.probs if self.budget == "all" else self.acceptance.expected(tree, stage)
        if len(keep) < len(tree):
            tree, est = tree.subset(keep), [est[i] for i in keep]
        return tree, list(est)
