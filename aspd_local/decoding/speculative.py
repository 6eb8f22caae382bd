"""Verifying a draft tree in one ``llama_decode`` (spec suffix-decoding.md section 3).

Each leaf path of the tree gets its own sequence id; every draft node goes into the batch once,
at position ``base + depth``, with the ids of all leaf paths through it, so it sees its ancestors
and never its siblings. The root (the token being decoded anyway) carries sequence 0 and every
draft id. Acceptance samples the target at the root and follows the child equal to the draw, so the
output is exactly what plain decoding would produce: the draft only decides which logits are
computed ahead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..kv import KvBook
from ..llama.context import Context
from ..suffix.proposer import DraftTree


@dataclass
class PendingDraft:
    tree: DraftTree
    seqs: list[int]  # one per leaf path
    node_seqs: list[list[int]]  # per node: the leaf-path ids through it
    root_row: int
    rows: list[int]  # per node: its batch row
    base: int  # position of the root


def add_draft_batch(ctx: Context, book: KvBook, root: int, base: int, tree: DraftTree) -> PendingDraft:
    """Fill the batch with the root token and the draft tree (the caller decodes it)."""
    leaves = tree.leaves()
    seqs = book.open_draft(len(leaves))
    node_seqs: list[list[int]] = [[] for _ in range(len(tree))]
    for seq, leaf in zip(seqs, leaves):
        for node in tree.path(leaf):
            node_seqs[node].append(seq)
    ctx.batch.clear()
    root_row = ctx.batch.add(root, base, [0, *seqs], True)
    rows = [ctx.batch.add(tree.tokens[i], base + tree.depths[i], node_seqs[i], True) for i in range(len(tree))]
    return PendingDraft(tree, seqs, node_seqs, root_row, rows, base)


def accept_walk(tree: DraftTree, root_row: int, rows: list[int], draw: Callable[[int], int],
                may_continue: Callable[[int], bool]) -> tuple[list[int], int]:
    """Walk the tree by the target's own draws. Returns (accepted node indices, the next token).

    ``draw(row)`` samples the target at a batch row; ``may_continue(token)`` says whether the walk
    may go on after accepting ``token`` (plain text, budget left).
    """
    accepted: list[int] = []
    node, row = -1, root_row
    while True:
        tok = draw(row)
        child = tree.child(node, tok)
        if child is None or not may_continue(tok):
            return accepted, tok
        accepted.append(child)
        node, row = child, rows[child]


def settle(book: KvBook, d: PendingDraft, accepted: list[int]) -> None:
    """Keep the accepted path's cells in sequence 0, free the rest."""
    keep = d.node_seqs[accepted[-1]][0] if accepted else None
    tokens = [d.tree.tokens[i] for i in accepted]
    positions = [d.base + d.tree.depths[i] for i in accepted]
    book.close_draft(d.seqs, keep, tokens, positions)


class Speculator:
    """Suffix speculation for one engine: the proposer, and the draft size the cost curve pays for."""

    def __init__(self, proposer, cost_ms: Callable[[int], float], max_nodes: int = 32):
        self.proposer = proposer
        self.cost_ms = cost_ms  # ms for one decode of n tokens on this machine
        self.max_nodes = max_nodes

    def begin(self, prompt: list[int]) -> None:
        self.proposer.begin(prompt)

    def observe(self, token: int) -> None:
        self.proposer.observe((token,))

    def plan(self, context: list[int], max_nodes: int, max_paths: int) -> DraftTree | None:
        """The draft to verify with the next token, cut to the size that maximises expected tokens per
        ms; None when plain decoding is faster."""
        n_max = min(self.max_nodes, max_nodes)
        if n_max <= 0 or max_paths <= 0:
            return None
        tree = self.proposer.propose(context, n_max)
        if tree is None:
            return None
        best_n, best_rate = 0, 1.0 / self.cost_ms(1)
        acc = 1.0
        for n, prob in enumerate(tree.probs, 1):
            acc += prob
            rate = acc / self.cost_ms(1 + n)
            if rate > best_rate:
                best_n, best_rate = n, rate
        if best_n == 0:
            return None
        tree = tree.truncated(best_n)
        while len(tree.leaves()) > max_paths and len(tree) > 1:
            tree = tree.truncated(len(tree) - 1)
        return tree
