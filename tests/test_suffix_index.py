"""The suffix index, the proposer and the on-disk cache against a brute-force reference: counts,
best-first order, MAX_SPEC = alpha * p, min_token_prob pruning, no match across sequence boundaries,
eviction, damaged and foreign cache files. No model needed."""

from __future__ import annotations

import heapq
import math
import os
import random

import numpy as np
import pytest

from aspd_local.decoding.speculative import DraftRequest, Speculator
from aspd_local.planner import Claim, DraftPolicy, plan_step
from aspd_local.step import Ask, DraftOffer, row
from aspd_local.suffix.acceptance import FIRST_AFTER_HIT, FIRST_AFTER_MISS, AcceptanceModel, Shadow
from aspd_local.suffix.cache import load_index, save_index
from aspd_local.suffix.index import TokenIndex
from aspd_local.suffix.proposer import SuffixProposer, grow_tree

# -- brute-force reference over plain lists -----------------------------------------------------


class Ref:
    """Sequences as Python lists; the last one may be open (still growing)."""

    def __init__(self, seqs, open_last=False, max_depth=64):
        self.seqs = [list(s) for s in seqs]
        self.open_last = open_last
        self.max_depth = max_depth

    def _occurrences(self, s):
        """(sequence, end index exclusive) of every occurrence of s."""
        k = len(s)
        return [(i, j + k) for i, seq in enumerate(self.seqs) for j in range(len(seq) - k + 1) if seq[j:j + k] == s]

    def followed(self, s):
        """Occurrences followed by something: a token, or the end of a finished sequence."""
        last = len(self.seqs) - 1
        return sum(1 for i, end in self._occurrences(s)
                   if end < len(self.seqs[i]) or not (self.open_last and i == last))

    def occ(self, s):
        return len(self._occurrences(s))

    def children(self, s):
        toks = sorted({seq[end] for i, end in self._occurrences(s) for seq in [self.seqs[i]] if end < len(seq)})
        return [(t, self.occ(s + [t])) for t in toks]

    def matches(self, ctx):
        """(p, count) for the longest p of each distinct occurrence set."""
        out = []
        prev = None
        for p in range(1, min(self.max_depth, len(ctx)) + 1):
            c = self.followed(list(ctx[-p:]))
            if c == 0:
                break
            if prev is not None and prev[1] != c:
                out.append(prev)
            prev = (p, c)
        if prev is not None:
            out.append(prev)
        return out

    def grow(self, pattern, budget, min_prob):
        """Best-first: (tokens, parents, depths, probs, counts, parent_counts); ties by expansion order."""
        heap, counter = [], 0
        tree = ([], [], [], [], [], [])

        def expand(parent, path, depth, d):
            nonlocal counter
            if depth >= self.max_depth:
                return
            total = self.followed(pattern + path)
            for tok, cnt in self.children(pattern + path):
                if total and cnt / total >= min_prob:
                    counter += 1
                    item = (-d * (cnt / total), counter, tok, parent, path + [tok], depth + 1, cnt, total)
                    heapq.heappush(heap, item)

        expand(-1, [], 0, 1.0)
        while heap and len(tree[0]) < budget:
            nd, _, tok, parent, path, depth, cnt, total = heapq.heappop(heap)
            for lst, v in zip(tree, (tok, parent, depth, -nd, cnt, total)):
                lst.append(v)
            if len(tree[0]) < budget:
                expand(len(tree[0]) - 1, path, depth, -nd)
        return tree

    def propose(self, ctx, max_nodes, alpha, min_prob):
        """Every match's tree; the best score wins, ties to the larger budget, then the longer match."""
        trees = []
        for p, _ in self.matches(ctx):
            budget = min(max_nodes, max(1, math.ceil(alpha * p)))
            t = self.grow(list(ctx[-p:]), budget, min_prob)
            if t[0]:
                trees.append((sum(t[3]), budget, p, t))
        if not trees:
            return None
        score, budget, p, t = max(trees, key=lambda x: (x[0], x[1], x[2]))
        return t, p


def _index(seqs, open_last=False, max_depth=64):
    idx = TokenIndex(max_depth)
    for i, s in enumerate(seqs):
        if open_last and i == len(seqs) - 1:
            idx.open_sequence(s[:3])
            for t in s[3:]:
                idx.extend([t])  # token by token, as the decoder does
        else:
            idx.add_sequence(s)
    return idx


def _random_case(rng, alphabet=4):
    seqs = [[rng.randrange(alphabet) for _ in range(rng.randrange(5, 60))] for _ in range(rng.randrange(1, 5))]
    open_last = rng.random() < 0.5
    if rng.random() < 0.5:  # a context from the corpus: long matches
        s = rng.choice(seqs)
        a = rng.randrange(len(s))
        ctx = s[max(0, a - rng.randrange(1, 12)):a + 1]
    else:
        ctx = [rng.randrange(alphabet) for _ in range(rng.randrange(1, 10))]
    return seqs, open_last, ctx


# -- index ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_matches_against_brute_force(seed):
    rng = random.Random(seed)
    for _ in range(40):
        seqs, open_last, ctx = _random_case(rng)
        depth = rng.choice([3, 8, 64])
        idx, ref = _index(seqs, open_last, depth), Ref(seqs, open_last, depth)
        got = [(p, c) for p, _, c in idx.matches(ctx)]
        assert got == ref.matches(ctx), (seqs, open_last, ctx)


def test_no_match_across_sequence_boundaries():
    idx = TokenIndex()
    idx.add_sequence([1, 2, 3])
    idx.add_sequence([4, 5])
    # "3 4" spans the boundary: only "4" matches
    assert [(p, c) for p, _, c in idx.matches([3, 4])] == [(1, 1)]
    # 3 ends its sequence: it occurs (followed by the end) but has no continuation to propose
    assert [(p, c) for p, _, c in idx.matches([2, 3])] == [(2, 1)]
    prop = SuffixProposer(idx, alpha=4, min_token_prob=0.0)
    prop.begin([])
    assert prop.propose([2, 3], 8) is None
    tree = prop.propose([4], 8)
    assert tree.tokens == [5] and tree.source == "global"


def test_open_sequence_end_is_not_a_match():
    """The current request's last token has nothing after it yet."""
    idx = TokenIndex()
    idx.open_sequence([7, 8, 9])
    assert list(idx.matches([9])) == []
    idx.extend([7])
    # "9 7" only occurs at the end (no continuation); "7" once with one: the first 7, followed by 8
    assert [(p, c) for p, _, c in idx.matches([9, 7])] == [(1, 1)]


def test_bulk_build_equals_incremental():
    rng = random.Random(3)
    seqs = [[rng.randrange(50) for _ in range(rng.randrange(0, 300))] for _ in range(30)]
    a = _index(seqs)
    b = TokenIndex.from_sequences(seqs)
    assert np.array_equal(a.corpus, b.corpus)
    assert a.seq_lengths == b.seq_lengths and a.n_tokens == b.n_tokens
    assert set(a._where) == set(b._where)
    for t in a._where:
        assert np.array_equal(a._where[t].view(), b._where[t].view())


def test_eviction_drops_oldest_first():
    seqs = [[i, i + 100, i + 200] for i in range(10)]
    idx = TokenIndex.from_sequences(seqs)
    assert idx.evict(max_tokens=12) == 6  # 30 tokens -> the newest 4 sequences
    assert [s.tolist() for s in idx.sequences()] == seqs[6:]
    assert list(idx.matches([2])) == []  # evicted text is gone
    assert [(p, c) for p, _, c in idx.matches([7])] == [(1, 1)]
    assert idx.evict(max_sequences=2) == 2
    assert idx.n_sequences == 2 and idx.n_tokens == 6
    assert idx.evict(max_tokens=100) == 0
    # an open (growing) sequence is never evicted
    idx.open_sequence([1, 2, 3, 4, 5])
    idx.evict(max_tokens=1)
    assert [s.tolist() for s in idx.sequences()] == [[1, 2, 3, 4, 5]]
    idx.extend([6])
    assert idx.corpus.tolist() == [1, 2, 3, 4, 5, 6]


# -- proposer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_proposer_against_brute_force(seed):
    rng = random.Random(100 + seed)
    n_trees = 0
    for _ in range(30):
        seqs, open_last, ctx = _random_case(rng, alphabet=rng.choice([3, 5]))
        alpha = rng.choice([0.5, 1.0, 2.0, 3.5])
        min_prob = rng.choice([0.0, 0.1, 0.3])
        depth = rng.choice([4, 64])
        max_nodes = rng.choice([3, 12, 40])
        idx, ref = _index(seqs, open_last, depth), Ref(seqs, open_last, depth)
        prop = SuffixProposer(None, alpha, min_prob, depth)
        prop.local = idx
        got = prop.propose(ctx, max_nodes)
        want = ref.propose(ctx, max_nodes, alpha, min_prob)
        if want is None:
            assert got is None
            continue
        n_trees += 1
        (tokens, parents, depths, probs, counts, parent_counts), p = want
        assert got.match_len == p
        assert got.tokens == tokens and got.parents == parents and got.depths == depths
        assert got.counts == counts and got.parent_counts == parent_counts
        assert got.probs == pytest.approx(probs)
        # the rules themselves
        assert len(got) <= min(max_nodes, max(1, math.ceil(alpha * p)))  # MAX_SPEC = alpha * p
        assert all(a >= b - 1e-12 for a, b in zip(got.probs, got.probs[1:]))  # best first
        for i in range(len(got)):
            assert got.counts[i] / got.parent_counts[i] >= min_prob  # pruning
            par = got.parents[i]
            assert par < i and got.probs[i] == pytest.approx((got.probs[par] if par >= 0 else 1.0)
                                                             * got.counts[i] / got.parent_counts[i])
            assert got.depths[i] <= depth
    assert n_trees > 20


def test_min_token_prob_prunes_rare_children():
    idx = TokenIndex()
    for _ in range(9):
        idx.add_sequence([1, 2])
    idx.add_sequence([1, 3])
    tree = grow_tree(idx, next(idx.matches([1]))[1], 10, 0.2)
    assert tree.tokens == [2] and tree.probs == [pytest.approx(0.9)]
    tree = grow_tree(idx, next(idx.matches([1]))[1], 10, 0.05)
    assert tree.tokens == [2, 3] and tree.probs == [pytest.approx(0.9), pytest.approx(0.1)]


def test_longest_match_gets_the_bigger_budget():
    """A longer match earns alpha * p nodes; with the same continuations it wins."""
    idx = TokenIndex()
    idx.add_sequence([5, 6, 7, 8, 9, 10, 11, 12, 13])
    prop = SuffixProposer(idx, alpha=1.0, min_token_prob=0.0)
    prop.begin([])
    t = prop.propose([5, 6, 7], 32)
    assert t.match_len == 3 and t.tokens == [8, 9, 10]
    t = prop.propose([99, 7], 32)  # only "7" matches: one node
    assert t.match_len == 1 and t.tokens == [8]


def test_many_occurrences_match_the_reference_counts():
    """Past 48 occurrences the children are grouped with numpy: same counts as the small path."""
    rng = random.Random(9)
    seqs = [[rng.randrange(3) for _ in range(400)]]
    ref = Ref(seqs)
    idx = _index(seqs)
    prop = SuffixProposer(None, alpha=4.0, min_token_prob=0.0)
    prop.local = idx
    for ctx in ([0], [1, 2], [2, 2, 0]):
        got = prop.propose(ctx, 16)
        (tokens, parents, depths, probs, counts, parent_counts), p = ref.propose(ctx, 16, 4.0, 0.0)
        assert (got.tokens, got.parents, got.counts, got.parent_counts) == (tokens, parents, counts, parent_counts)


# -- sizing drafts ----------------------------------------------------------------------------------


class _Drafts:
    """A speculator and the step plan that grants its offers (aspd_local/planner.py), as one request's
    streams meet them in a step."""

    def __init__(self, spec: Speculator, policy: DraftPolicy):
        self.spec, self.policy = spec, policy

    def plan_step(self, reqs, base_tokens, max_nodes, max_paths):
        ask = Ask(rows=[row(1, 0, 0, True) for _ in range(base_tokens)])
        for k, r in enumerate(reqs):
            got = self.spec.propose(r)
            if got is not None:
                ask.drafts.append(DraftOffer(k, *got))
        plan_step([Claim(ask, max_paths)], 512, 512, max_nodes, self.policy)
        out = [None] * len(reqs)
        for offer, tree in zip(ask.drafts, ask.trees):
            out[offer.root] = tree
        return out

    def plan(self, context, max_nodes, max_paths, new_tokens=()):
        return self.plan_step([DraftRequest("serial", context, max_nodes, (), new_tokens)], 1, max_nodes,
                              max_paths)[0]


def _speculator(seqs, cost, budget="cost", acceptance=None):
    idx = TokenIndex.from_sequences(seqs)
    prop = SuffixProposer(idx, alpha=4.0, min_token_prob=0.0)
    spec = Speculator(prop, acceptance or AcceptanceModel(), max_nodes=32, budget=budget)
    spec.begin([])
    return _Drafts(spec, DraftPolicy(cost if budget == "cost" else None, 1.0))


def test_budget_follows_the_cost_curve():
    seqs = [list(range(100, 140))] * 5  # a long, certain continuation (count 5 at every node)
    ctx = list(range(100, 110))
    # a GPU-like curve: more tokens in a batch are free -> take the whole tree
    t = _speculator(seqs, lambda n: 10.0).plan(ctx, 32, 8)
    assert t is not None and len(t) == 30  # the match left 30 tokens
    # a curve where every extra token costs a full decode: never worth it
    assert _speculator(seqs, lambda n: 10.0 * n).plan(ctx, 32, 8) is None
    # in between: a few nodes (their estimates shrink with depth, the cost grows)
    t = _speculator(seqs, lambda n: 10 + 3 * n).plan(ctx, 32, 8)
    assert t is not None and 0 < len(t) < 30
    # "all" ignores the curve
    assert len(_speculator(seqs, lambda n: 10.0 * n, "all").plan(ctx, 32, 8)) == 30


def test_acceptance_model_learns_along_the_stream():
    idx = TokenIndex.from_sequences([[1, 2, 3, 4, 5, 6]])
    prop = SuffixProposer(idx, alpha=4.0, min_token_prob=0.0)
    prop.begin([])
    tree = prop.propose([1], 8)
    assert tree.tokens == [2, 3, 4, 5]
    miss, hit = AcceptanceModel(), AcceptanceModel()
    before = miss.expected(tree, FIRST_AFTER_MISS)
    for _ in range(20):  # the stream never takes the proposal
        assert not Shadow(tree, FIRST_AFTER_MISS).step(miss, 9)
        sh = Shadow(tree, FIRST_AFTER_HIT)  # the stream follows the proposal to its end
        assert all(sh.step(hit, t) for t in (2, 3, 4, 5))
    assert miss.expected(tree, FIRST_AFTER_MISS)[0] < 0.2 < before[0]
    assert hit.expected(tree, FIRST_AFTER_HIT)[-1] > 0.8 > before[-1]
    # cells are per stage: what was learned after misses says nothing about the first node after a hit
    assert miss.expected(tree, FIRST_AFTER_HIT) == before_stage(tree, FIRST_AFTER_HIT)


def before_stage(tree, stage):
    return AcceptanceModel().expected(tree, stage)


def test_speculator_learns_from_proposals_it_did_not_verify():
    """Where the prior says a draft does not pay, following the proposals along the stream's real
    tokens shows they are right, and drafts start."""
    stream = list(range(100, 160))
    spec = _speculator([stream], lambda n: 10.0 + 10.0 * n)
    plans = []
    for k in range(1, len(stream)):
        plans.append(spec.plan(stream[:k], 32, 8, new_tokens=[stream[k - 1]]))
    assert plans[0] is None and plans[1] is None  # one occurrence: prior 0.5, a node costs as much as it gains
    assert any(p is not None and len(p) >= 2 for p in plans[20:])


def test_drafts_of_a_step_share_nodes_and_paths():
    seqs = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 2, 3, 4, 50, 60], [11, 12, 13, 14, 15, 16, 17, 18]]
    spec = _speculator(seqs, lambda n: 1.0, "all")
    reqs = [DraftRequest(("b", 0), [1, 2], 32), DraftRequest(("b", 1), [11], 32), DraftRequest(("b", 2), [99], 32)]
    trees = spec.plan_step(reqs, 3, 6, 8)
    assert trees[2] is None  # nothing matches
    assert sum(len(t) for t in trees if t) == 6  # the node budget is shared
    trees = spec.plan_step(reqs, 3, 32, 1)
    assert sum(len(t.leaves()) for t in trees if t) <= 1  # and so are the sequence ids
    for t in trees:
        if t:
            assert all(p < i for i, p in enumerate(t.parents))


# -- the on-disk cache ------------------------------------------------------------------------------


def test_cache_round_trip_and_bound(tmp_path):
    path = str(tmp_path / "s.npz")
    idx = TokenIndex.from_sequences([[1, 2, 3], [4, 5], [6, 7, 8, 9]])
    save_index(idx, path, model_key="m")
    back = load_index(path, model_key="m", n_vocab=10)
    assert [s.tolist() for s in back.sequences()] == [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    back = load_index(path, model_key="m", max_tokens=6)
    assert [s.tolist() for s in back.sequences()] == [[4, 5], [6, 7, 8, 9]]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".suffix-")]  # no temp file left


def _write(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "format", "model", "vocab", "lengths",
                                    "negative", "pickle", "shape"])
def test_damaged_or_foreign_cache_is_ignored(tmp_path, damage, caplog):
    path = str(tmp_path / "s.npz")
    save_index(TokenIndex.from_sequences([[1, 2, 3], [4, 5]]), path, model_key="m")
    good = open(path, "rb").read()
    ok = dict(format=np.array(2), model=np.array("m"), tokens=np.array([1, 2, 3], np.int32),
              lengths=np.array([3]))
    if damage == "garbage":
        open(path, "wb").write(os.urandom(500))
    elif damage == "truncated":
        open(path, "wb").write(good[: len(good) // 2])
    elif damage == "empty":
        open(path, "wb").close()
    elif damage == "format":
        _write(path, **{**ok, "format": np.array(99)})
    elif damage == "model":
        _write(path, **{**ok, "model": np.array("another-model")})
    elif damage == "vocab":
        _write(path, **{**ok, "tokens": np.array([1, 2, 300], np.int32)})
    elif damage == "lengths":
        _write(path, **{**ok, "lengths": np.array([5])})
    elif damage == "negative":
        _write(path, **{**ok, "tokens": np.array([1, -2, 3], np.int32)})
    elif damage == "pickle":
        _write(path, **{**ok, "tokens": np.array([[1], "x"], dtype=object)})
    elif damage == "shape":
        _write(path, **{**ok, "tokens": np.array([[1, 2, 3]], np.int32)})
    idx = load_index(path, model_key="m", n_vocab=100)
    assert idx.n_tokens == 0 and len(idx) == 0
    assert "ignoring the suffix cache" in caplog.text
    # and the next save replaces the file with a good one
    idx.add_sequence([7, 8])
    save_index(idx, path, model_key="m")
    assert [s.tolist() for s in load_index(path, model_key="m").sequences()] == [[7, 8]]


# -- the cost curve ---------------------------------------------------------------------------------


def test_cost_curve_helpers():
    from aspd_local.decoding.costcurve import cost_of, monotone, plausible

    assert monotone({1: 10.0, 2: 9.0, 4: 20.0}) == {1: 10.0, 2: 10.0, 4: 20.0}
    assert plausible({1: 10.0, 2: 14.0, 32: 200.0})
    assert not plausible({1: 10.0, 2: 80.0})  # two tokens dearer than two calls: measured under load
    curve = {1: 10.0, 2: 14.0, 4: 20.0}
    assert cost_of(curve, 3) == pytest.approx(17.0)
    assert cost_of(curve, 8) == pytest.approx(32.0)  # extrapolated along the last segment
