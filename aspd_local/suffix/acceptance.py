"""How likely a draft node is to be accepted, learned from the drafts already verified.

The proposer's D (path probability from the index's counts) ranks nodes well but is overconfident:
a continuation seen once gets D = 1, and in open chat most such one-off matches are wrong. On a CPU,
where verifying 8 tokens costs about 4 decodes, sizing drafts by raw D makes decoding slower. So the
decoder sizes drafts by a calibrated estimate: the probability that a node is accepted given that its
parent was, per cell of (stage, match length, support, count ratio), a Beta posterior whose prior mean
is the index's own ratio shrunk by its support, ratio * n / (n + 1). Every verified node whose parent
was accepted is one observation of its cell. Nodes are observed conditionally on their parent, so the
estimate for deep nodes is learned from any accepted parent, not only from drafts already sized deep.

The stage separates a draft's first node by how the previous draft of the same stream fared (copying
runs: the next draft is likely right too) from deeper nodes.
"""

from __future__ import annotations

from .proposer import DraftTree

FIRST_NONE, FIRST_AFTER_MISS, FIRST_AFTER_HIT, DEEP = range(4)


def _bucket(x: float, edges: tuple[float, ...]) -> int:
    for i, e in enumerate(edges):
        if x < e:
            return i
    return len(edges)


class AcceptanceModel:
    """P(node accepted | parent accepted), online. One per engine: it carries over between requests."""

    def __init__(self, prior_strength: float = 2.0):
        self.prior_strength = prior_strength
        self.cells: dict[tuple, list[float]] = {}  # key -> [accepted, seen]

    @staticmethod
    def _key(tree: DraftTree, i: int, first_stage: int) -> tuple:
        n = tree.parent_counts[i] if tree.parent_counts else 1
        ratio = tree.counts[i] / n if n else 0.0
        stage = first_stage if tree.depths[i] == 1 else DEEP
        return (stage, _bucket(tree.match_len, (2, 4, 8)), _bucket(n, (2, 5)), _bucket(ratio, (0.5, 0.9)))

    def conditional(self, tree: DraftTree, i: int, first_stage: int) -> float:
        n = tree.parent_counts[i] if tree.parent_counts else 1
        ratio = tree.counts[i] / n if n else 0.0
        prior = ratio * n / (n + 1)
        acc, seen = self.cells.get(self._key(tree, i, first_stage), (0.0, 0.0))
        return (acc + self.prior_strength * prior) / (seen + self.prior_strength)

    def expected(self, tree: DraftTree, first_stage: int) -> list[float]:
        """Per node: the estimated probability that the path to it is accepted."""
        out: list[float] = []
        for i in range(len(tree)):
            q = self.conditional(tree, i, first_stage)
            par = tree.parents[i]
            out.append(q * (out[par] if par >= 0 else 1.0))
        return out

    def record(self, tree: DraftTree, i: int, first_stage: int, accepted: bool) -> None:
        """One observation: node ``i``'s parent was on the stream's path; was ``i`` too?"""
        cell = self.cells.setdefault(self._key(tree, i, first_stage), [0.0, 0.0])
        cell[0] += 1.0 if accepted else 0.0
        cell[1] += 1.0


class Shadow:
    """A proposed tree followed along the tokens the stream actually produced.

    Verification accepts a node exactly when the stream's next token equals it, so following the
    whole proposed tree -- not only the part that was verified -- observes every node whose parent was
    on the stream's path, at no cost to the model: deep nodes are learned even while the cost curve
    keeps the verified drafts short, and proposals are learned while none is verified at all.
    """

    __slots__ = ("tree", "stage", "node", "kids")

    def __init__(self, tree: DraftTree, first_stage: int):
        self.tree, self.stage, self.node = tree, first_stage, -1
        self.kids: dict[int, list[int]] = {}
        for i, par in enumerate(tree.parents):
            self.kids.setdefault(par, []).append(i)

    def step(self, model: AcceptanceModel, token: int) -> bool:
        """The stream's next token: record the children of the current node; False when the tree is left."""
        nxt = None
        for i in self.kids.get(self.node, ()):
            hit = self.tree.tokens[i] == token
            model.record(self.tree, i, self.stage, hit)
            if hit:
                nxt = i
        if nxt is None:
            return False
        self.node = nxt
        return True
