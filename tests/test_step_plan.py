"""The step plan (aspd_local/planner.py): one token budget per step, filled with every running request's
mandatory rows first, then prompt rows cut to fit, then the draft nodes the cost curve pays for, ranked
across requests. No model needed."""

from __future__ import annotations

from aspd_local.planner import Claim, DraftPolicy, plan_step
from aspd_local.step import Ask, DraftOffer, row
from aspd_local.suffix.proposer import DraftTree


def _ask(n_rows=0, n_prefill=0, drafts=()):
    a = Ask(rows=[row(1, i, 0, True) for i in range(n_rows)],
            prefill=[row(2, i, 0, False) for i in range(n_prefill)])
    a.drafts = list(drafts)
    return a


def _chain(n: int, expected: list[float]) -> DraftOffer:
    """A draft that is one path of ``n`` nodes, with each node's expected tokens."""
    t = DraftTree(match_len=1, source="test")
    for i in range(n):
        t.tokens.append(100 + i)
        t.parents.append(i - 1)
        t.depths.append(i + 1)
        t.probs.append(expected[i])
        t.counts.append(1)
        t.parent_counts.append(1)
    return DraftOffer(0, t, list(expected))


NONE = DraftPolicy(None)


def test_mandatory_rows_first_then_prefill_cut_to_the_budget():
    running = [_ask(1), _ask(8), _ask(3)]
    prompt = _ask(n_prefill=1000)
    placed = plan_step([Claim(a, 0) for a in running + [prompt]], n_batch=512, budget=256, spare_cells=0,
                       drafts=NONE)
    assert [c.ask for c in placed] == running + [prompt]
    assert prompt.n_prefill == 256 - 12  # what the running requests' tokens left of the budget


def test_prefill_is_first_come_first_served_and_a_request_with_nothing_granted_waits():
    first, second, third = _ask(n_prefill=200), _ask(n_prefill=200), _ask(n_prefill=10)
    placed = plan_step([Claim(a, 0) for a in (first, second, third)], 512, 256, 0, NONE)
    assert (first.n_prefill, second.n_prefill, third.n_prefill) == (200, 56, 0)
    assert [c.ask for c in placed] == [first, second]  # the third waits for the next step


def test_mandatory_rows_that_do_not_fit_the_batch_wait_whole():
    a, b, c = _ask(6), _ask(6), _ask(2)
    placed = plan_step([Claim(x, 0) for x in (a, b, c)], n_batch=10, budget=10, spare_cells=0, drafts=NONE)
    assert [p.ask for p in placed] == [a, c]  # b's six rows would overflow the batch; nothing of it goes in


def _granted(ask):
    return [len(t) if t is not None else 0 for t in ask.trees]


def test_drafts_are_ranked_across_requests_whatever_their_order():
    """A draft belongs to the step: the likelier nodes win wherever their request stands in line."""
    curve = DraftPolicy(lambda n: 10.0 + 1.5 * n, min_gain=1.0)

    def plan(order):
        weak = _ask(1, drafts=[_chain(6, [0.3, 0.2, 0.1, 0.05, 0.02, 0.01])])
        strong = _ask(1, drafts=[_chain(6, [0.95, 0.9, 0.85, 0.8, 0.75, 0.7])])
        asks = {"weak": weak, "strong": strong}
        plan_step([Claim(asks[k], 4) for k in order], 512, 256, 64, curve)
        return _granted(weak), _granted(strong)

    assert plan(["weak", "strong"]) == plan(["strong", "weak"])
    weak, strong = plan(["weak", "strong"])
    assert strong[0] > weak[0] and strong[0] >= 4


def test_draft_room_follows_the_cost_curve():
    def granted(cost):
        a = _ask(1, drafts=[_chain(8, [0.9, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02])])
        plan_step([Claim(a, 4)], 512, 256, 64, DraftPolicy(cost, 1.0))
        return _granted(a)[0]

    assert granted(lambda n: 10.0) == 8  # a flat curve (a GPU): every node
    assert granted(lambda n: 10.0 * n) == 0  # every row costs a full decode: none
    assert granted(lambda n: 10.0 + 4.0 * n) == 3  # the nodes whose tokens beat their cost


def test_drafts_fit_the_spare_cells_the_budget_and_the_sequence_ids():
    a = _ask(1, drafts=[_chain(8, [0.9] * 8)])
    plan_step([Claim(a, 4)], 512, 256, spare_cells=3, drafts=NONE)
    assert _granted(a) == [3]
    b = _ask(1, n_prefill=0, drafts=[_chain(8, [0.9] * 8)])
    big = _ask(n_prefill=1000)
    plan_step([Claim(big, 0), Claim(b, 4)], 512, 256, 64, NONE)
    assert big.n_prefill == 255 and _granted(b) == [0]  # the prompt took the budget the drafts would have used
    c = _ask(1, drafts=[_chain(8, [0.9] * 8)])
    plan_step([Claim(c, 0)], 512, 256, 64, NONE)
    assert _granted(c) == [0]  # no sequence id for a leaf path


def test_two_branches_share_the_paths_of_their_request():
    a = _ask(2, drafts=[_chain(3, [0.9, 0.8, 0.7]), _chain(3, [0.6, 0.5, 0.4])])
    a.drafts[1].root = 1
    plan_step([Claim(a, 1)], 512, 256, 64, NONE)
    assert _granted(a) == [3, 0]  # one leaf path: the likelier branch keeps its draft


def test_drafts_stay_within_the_largest_decode_the_curve_knows():
    """Past the curve's last measured size its straight-line extension is a guess: a step's drafts stop at
    that size, however many requests offer nodes."""
    asks = [_ask(1, drafts=[_chain(30, [0.99] * 30)]) for _ in range(4)]
    plan_step([Claim(a, 8) for a in asks], 512, 256, 512, DraftPolicy(lambda n: 10.0, 1.0, max_rows=32))
    assert sum(sum(_granted(a)) for a in asks) == 32 - 4
    asks = [_ask(1, drafts=[_chain(30, [0.99] * 30)]) for _ in range(4)]
    plan_step([Claim(a, 8) for a in asks], 512, 256, 512, DraftPolicy(lambda n: 10.0, 1.0))
    assert sum(sum(_granted(a)) for a in asks) == 120  # (no bound given: every node the flat curve pays for)
