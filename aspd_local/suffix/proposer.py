"""Proposing a speculation tree (spec suffix-decoding.md section 2).

For every match length p of the context's suffix in an index, a tree grows best-first from the
matched node by path probability D(child) = D(parent) * count(child) / count(parent), up to
``alpha * p`` nodes, dropping children with count(child) / count(parent) < ``min_token_prob``.
Its score, the sum of D, is the expected number of accepted tokens. The best tree over all p and
all indexes wins. Nodes are listed in expansion order, so every prefix of the list is a tree too:
the decoder cuts it to the size the machine's cost curve pays for.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .index import SENTINEL, TokenIndex


@dataclass
class DraftTree:
    """Draft tokens below a root (the token about to be decoded). ``parents[i] == -1``: child of the root."""

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)  # D: probability the path to this node is accepted

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def score(self) -> float:
        return float(sum(self.probs))

    def truncated(self, n: int) -> "DraftTree":
        return DraftTree(self.tokens[:n], self.parents[:n], self.depths[:n], self.probs[:n])

    def child(self, parent: int, token: int) -> int | None:
        for i, (t, p) in enumerate(zip(self.tokens, self.parents)):
            if p == parent and t == token:
                return i
        return None

    def leaves(self) -> list[int]:
        has_child = set(self.parents)
        return [i for i in range(len(self.tokens)) if i not in has_child]

    def path(self, i: int) -> list[int]:
        out = []
        while i >= 0:
            out.append(i)
            i = self.parents[i]
        return out[::-1]


def _children(corpus: np.ndarray, positions: np.ndarray):
    """Group continuation positions by the token found there: [(token, positions + 1)]."""
    n = corpus.shape[0]
    pos = positions[positions < n]
    if pos.size == 0:
        return []
    toks = corpus[pos]
    if pos.size <= 48:
        groups: dict[int, list[int]] = {}
        for t, p in zip(toks.tolist(), pos.tolist()):
            if t != SENTINEL:
                groups.setdefault(t, []).append(p + 1)
        return [(t, np.array(ps, dtype=np.int64)) for t, ps in groups.items()]
    keep = toks != SENTINEL
    pos, toks = pos[keep], toks[keep]
    order = np.argsort(toks, kind="stable")
    toks, pos = toks[order], pos[order]
    cuts = np.flatnonzero(np.diff(toks)) + 1
    return [(int(ts[0]), ps + 1) for ts, ps in zip(np.split(toks, cuts), np.split(pos, cuts))]


def grow_tree(index: TokenIndex, positions: np.ndarray, budget: int, min_token_prob: float) -> DraftTree:
    """Best-first tree of at most ``budget`` nodes below the node whose continuations are ``positions``."""
    corpus = index.corpus
    tree = DraftTree()
    heap: list = []
    counter = 0

    def expand(parent: int, depth: int, d: float, pos: np.ndarray) -> None:
        nonlocal counter
        if depth >= index.max_depth:
            return
        total = pos.shape[0]
        for tok, child_pos in _children(corpus, pos):
            ratio = child_pos.shape[0] / total
            if ratio >= min_token_prob:
                counter += 1
                heapq.heappush(heap, (-d * ratio, counter, tok, parent, depth + 1, child_pos))

    expand(-1, 0, 1.0, positions)
    while heap and len(tree) < budget:
        neg_d, _, tok, parent, depth, pos = heapq.heappop(heap)
        tree.tokens.append(tok)
        tree.parents.append(parent)
        tree.depths.append(depth)
        tree.probs.append(-neg_d)
        expand(len(tree) - 1, depth, -neg_d, pos)
    return tree


class SuffixProposer:
    """Proposes draft trees from a per-request index and an optional global one."""

    def __init__(self, global_index: TokenIndex | None = None, alpha: float = 2.0, min_token_prob: float = 0.1,
                 max_depth: int = 64, max_occurrences: int = 256):
        self.global_index = global_index
        self.alpha = alpha
        self.min_token_prob = min_token_prob
        self.max_depth = max_depth
        self.max_occurrences = max_occurrences
        self.local = TokenIndex(max_depth)

    def begin(self, prompt: Sequence[int]) -> None:
        """A new request: the per-request index starts from its prompt."""
        self.local = TokenIndex(self.max_depth)
        self.local.open_sequence(prompt)

    def observe(self, tokens: Sequence[int]) -> None:
        self.local.extend(tokens)

    def propose(self, context: Sequence[int], max_nodes: int) -> DraftTree | None:
        """The best-scoring tree for what follows ``context`` (its last token is the root)."""
        if max_nodes <= 0:
            return None
        ctx = list(context[-self.max_depth:])
        best: DraftTree | None = None
        for index in (self.local, self.global_index):
            if index is None or len(index) == 0:
                continue
            for p, positions in index.matches(ctx, self.max_occurrences):
                budget = min(max_nodes, max(1, math.ceil(self.alpha * p)))
                tree = grow_tree(index, positions, budget, self.min_token_prob)
                if len(tree) and (best is None or tree.score > best.score):
                    best = tree
        return best
