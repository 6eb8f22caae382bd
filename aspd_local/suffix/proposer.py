"""Proposing a speculation tree (docs/suffix-decoding.md section 2).

For every match length p of the context's suffix in an index, a tree grows best-first from the
matched node by path probability D(child) = D(parent) * count(child) / count(parent), up to
``alpha * p`` nodes, dropping children with count(child) / count(parent) < ``min_token_prob``.
Its score, the sum of D, is the expected number of accepted tokens. The best tree over all p and
all indexes wins. Nodes are listed in expansion order, so every prefix of the list is a tree too:
the decoder cuts it to the size the machine's cost curve pays for.

Counts: count(parent) is the number of occurrences of the parent's string that are followed by
something (a token, or the end of a finished sequence); count(child) the number followed by the
child's token. The occurrence at the very end of the growing current request has no continuation
yet and is left out.
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
    """Draft tokens below a root (the token about to be decoded). ``parents[i] == -1``: child of the root.

    Parents come before their children, so every prefix of the node list is a tree.
    """

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)  # D: probability the path to this node is accepted
    counts: list[int] = field(default_factory=list)  # count(node)
    parent_counts: list[int] = field(default_factory=list)  # count(parent) (the matched node's for depth 1)
    match_len: int = 0  # p: the length of the context suffix the tree was grown from
    source: str = ""  # which index it came from

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def score(self) -> float:
        return float(sum(self.probs))

    def truncated(self, n: int) -> "DraftTree":
        return self.subset(list(range(min(n, len(self)))))

    def subset(self, nodes: list[int]) -> "DraftTree":
        """The tree of ``nodes`` (each node's parent must be among the earlier ones), renumbered."""
        new = {old: i for i, old in enumerate(nodes)}
        t = DraftTree(match_len=self.match_len, source=self.source)
        for old in nodes:
            par = self.parents[old]
            if par != -1 and par not in new:
                raise ValueError("a node's parent must come before it")
            t.tokens.append(self.tokens[old])
            t.parents.append(-1 if par == -1 else new[par])
            t.depths.append(self.depths[old])
            t.probs.append(self.probs[old])
            t.counts.append(self.counts[old] if self.counts else 0)
            t.parent_counts.append(self.parent_counts[old] if self.parent_counts else 0)
        return t

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


def _children(corpus: np.ndarray, positions: np.ndarray) -> tuple[int, list[tuple[int, np.ndarray]]]:
    """count(node) and its children: (token, positions after the child's occurrences)."""
    n = corpus.shape[0]
    pos = positions[positions < n]
    if pos.size == 0:
        return 0, []
    toks = corpus[pos]
    if pos.size <= 48:
        groups: dict[int, list[int]] = {}
        for t, p in zip(toks.tolist(), pos.tolist()):
            if t != SENTINEL:
                groups.setdefault(t, []).append(p + 1)
        return int(pos.size), [(t, np.array(ps, dtype=np.int64)) for t, ps in sorted(groups.items())]
    keep = toks != SENTINEL
    kpos, ktoks = pos[keep], toks[keep]
    if kpos.size == 0:
        return int(pos.size), []
    order = np.argsort(ktoks, kind="stable")
    ktoks, kpos = ktoks[order], kpos[order]
    cuts = np.flatnonzero(np.diff(ktoks)) + 1
    return int(pos.size), [(int(ts[0]), ps + 1) for ts, ps in zip(np.split(ktoks, cuts), np.split(kpos, cuts))]


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
        total, kids = _children(corpus, pos)
        for tok, child_pos in kids:
            ratio = child_pos.shape[0] / total
            if ratio >= min_token_prob:
                counter += 1
                # ties broken by expansion order: deterministic, parents always first
                heapq.heappush(heap, (-d * ratio, counter, tok, parent, depth + 1, child_pos, total))

    expand(-1, 0, 1.0, positions)
    while heap and len(tree) < budget:
        neg_d, _, tok, parent, depth, pos, total = heapq.heappop(heap)
        tree.tokens.append(tok)
        tree.parents.append(parent)
        tree.depths.append(depth)
        tree.probs.append(-neg_d)
        tree.counts.append(int(pos.shape[0]))
        tree.parent_counts.append(int(total))
        if len(tree) < budget:
            expand(len(tree) - 1, depth, -neg_d, pos)
    return tree


class SuffixProposer:
    """Proposes draft trees from a per-request index and an optional global one."""

    def __init__(self, global_index: TokenIndex | None = None, alpha: float = 2.0, min_token_prob: float = 0.1,
                 max_depth: int = 64, max_occurrences: int = 256):
        if alpha <= 0:
            raise ValueError("alpha must be > 0")
        if not 0 <= min_token_prob <= 1:
            raise ValueError("min_token_prob must be in [0, 1]")
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

    def indexes(self, extra: Sequence[TokenIndex] = ()) -> list[tuple[str, TokenIndex]]:
        out = [("request", self.local)]
        out += [(f"extra{i}", x) for i, x in enumerate(extra)]
        if self.global_index is not None:
            out.append(("global", self.global_index))
        return out

    def propose(self, context: Sequence[int], max_nodes: int, extra: Sequence[TokenIndex] = ()) -> DraftTree | None:
        """The best-scoring tree for what follows ``context`` (its last token is the root); ``extra``
        indexes are searched too (a branch's own text).

        Trees are grown largest budget first (longest matches), so most shorter matches are skipped:
        a tree of at most ``budget`` nodes scores at most ``budget``. Ties go to the larger budget, then
        to the earlier index (request, extra, global), then to the longer match.
        """
        if max_nodes <= 0 or not len(context):
            return None
        ctx = np.asarray(context[-self.max_depth:], dtype=np.int64)
        cands = []
        for k, (name, index) in enumerate(self.indexes(extra)):
            if len(index) == 0:
                continue
            for p, positions, _count in index.matches(ctx, self.max_occurrences):
                budget = min(max_nodes, max(1, math.ceil(self.alpha * p)))
                cands.append((-budget, k, -p, name, index, positions))
        cands.sort(key=lambda c: c[:3])
        best: DraftTree | None = None
        for neg_budget, _, neg_p, name, index, positions in cands:
            if best is not None and -neg_budget <= best.score:
                break  # sorted by budget: no later tree can score higher
            tree = grow_tree(index, positions, -neg_budget, self.min_token_prob)
            if len(tree) and (best is None or tree.score > best.score):
                tree.match_len, tree.source = -neg_p, name
                best = tree
        return best
