"""The numpy sampler: masks, filters, penalty and seeds, checked against their definitions."""

import numpy as np
import pytest

from aspd_local.aspd.grammar import Grammar, Phase
from aspd_local.aspd.tokens import AspdTokens
from aspd_local.sampling import SamplingParams, StreamSampler

A = AspdTokens(10, 11, 12, 13, 14, 15)
V = 32


def _grammar(structured=True):
    return Grammar(V, control_ids=[0, 1, 2, 10, 11, 12, 13, 14, 15], eog_ids=[1], aspd=A, structured=structured)


def test_phase_constraints():
    g = _grammar()
    serial, title, after, branch = (g.constraint(p) for p in (Phase.SERIAL, Phase.TITLE, Phase.AFTER_TITLE,
                                                                Phase.BRANCH))
    assert serial.allows(A.title_open) and serial.allows(1) and not serial.allows(A.para_open)
    assert not serial.allows(0) and serial.allows(5)
    assert title.allows(A.title_close) and not title.allows(1) and not title.allows(A.title_open)
    assert after.allows(A.title_open) and after.allows(A.para_open) and not after.allows(5)
    assert branch.allows(A.branch_close) and branch.allows(1) and not branch.allows(A.para_close)
    ar = _grammar(structured=False).constraint(Phase.SERIAL)
    assert not ar.allows(A.title_open) and ar.allows(1)


def test_greedy_respects_mask():
    g = _grammar()
    logits = np.zeros(V, dtype=np.float32)
    logits[A.para_open] = 9.0
    logits[7] = 3.0
    s = StreamSampler(SamplingParams(), (0,))
    assert s.sample(logits, g.constraint(Phase.SERIAL), []) == 7
    assert s.sample(logits, g.constraint(Phase.AFTER_TITLE), []) == A.para_open


def test_repeat_penalty_moves_greedy_choice():
    g = _grammar()
    logits = np.zeros(V, dtype=np.float32)
    logits[5], logits[6] = 2.0, 1.5
    s = StreamSampler(SamplingParams(repeat_penalty=1.5), (0,))
    assert s.sample(logits, g.constraint(Phase.SERIAL), [5]) == 6  # 2.0 / 1.5 < 1.5
    assert s.sample(logits, g.constraint(Phase.SERIAL), [6]) == 5


def test_seeded_streams_reproduce_and_differ():
    g = _grammar()
    logits = np.linspace(0, 2, V).astype(np.float32)
    p = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=7)
    c = g.constraint(Phase.SERIAL)

    def draw(key):
        s = StreamSampler(p, key)
        return [s.sample(logits, c, []) for _ in range(30)]

    assert draw((1, 0, 0)) == draw((1, 0, 0))
    assert draw((1, 0, 0)) != draw((1, 0, 1))


def test_sampled_frequencies_follow_softmax():
    g = _grammar()
    logits = np.full(V, -np.inf, dtype=np.float32)
    logits[[3, 4, 5]] = [0.0, 1.0, 2.0]
    p = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=3)
    s = StreamSampler(p, (0,))
    c = g.constraint(Phase.SERIAL)
    n = 6000
    counts = np.bincount([s.sample(logits, c, []) for _ in range(n)], minlength=V)[[3, 4, 5]] / n
    want = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    assert np.max(np.abs(counts - want)) < 0.03


def test_filters_cut_the_tail():
    g = _grammar()
    logits = np.full(V, -np.inf, dtype=np.float32)
    logits[[3, 4, 5, 6]] = [5.0, 4.9, 0.0, -1.0]
    c = g.constraint(Phase.SERIAL)
    for params in (SamplingParams(temperature=2.0, top_k=2, top_p=1.0, min_p=0.0, seed=1),
                   SamplingParams(temperature=2.0, top_k=0, top_p=0.9, min_p=0.0, seed=1),
                   SamplingParams(temperature=2.0, top_k=0, top_p=1.0, min_p=0.1, seed=1)):
        s = StreamSampler(params, (0,))
        assert {s.sample(logits, c, []) for _ in range(300)} == {3, 4}


def test_invalid_params():
    with pytest.raises(ValueError):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError):
        SamplingParams(top_p=0)
