"""Engine.score against an independent computation, and the KV cache left clean.

Reference: a greedy plain decode through the engine, token by token, with a logits processor that
records the log-softmax of every step's logits; the log-probability of each chosen token there must
equal what Engine.score gives for the same continuation (decoded in one batch). f16 weights, so the
only difference is llama.cpp's batch-size kernel noise (docs/format.md section 8: ~0.01 in logits).
"""

from __future__ import annotations

import numpy as np
import pytest

from aspd_local.data.independence import block_scores, split_lead
from aspd_local.data.segments import Block, Branch

TOL = 0.05  # nats; f16 batch-1 vs batch-n logits differ by ~0.015


def _log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    return x - (x.max() + np.log(np.exp(x - x.max()).sum()))


def test_score_matches_plain_decode_and_leaves_the_cache_clean(f16_engine):
    e = f16_engine
    steps = []
    prompt = e.prompt_tokens("Name three colors.")
    r = e.generate(prompt, mode="ar", max_tokens=12, speculate="none", keep=False,
                   processors=[lambda info, x: steps.append(_log_softmax(x))])
    answer = list(r.tokens)
    assert len(answer) >= 4
    ref = np.array([steps[i][t] for i, t in enumerate(answer)])
    got = np.array(e.score(prompt, answer))
    assert got.shape == ref.shape
    assert np.all(got <= 0)
    assert np.max(np.abs(got - ref)) < TOL, (got, ref)
    # greedy tokens: each is the most likely one, so its log-probability is at least that of a uniform guess
    assert np.all(got > -np.log(e.model.n_vocab))
    assert e.check_cache() == []
    assert e.cached_tokens()[0] == prompt  # the prefix stays cached, the continuation does not
    # scoring again (prefix reused from the cache) gives the same numbers
    again = np.array(e.score(prompt, answer))
    assert np.max(np.abs(again - got)) < TOL
    assert e.check_cache() == []


def test_score_sums_over_pieces(f16_engine):
    """log p(a + b | x) = log p(a | x) + log p(b | x + a): the chain rule, through two calls."""
    e = f16_engine
    x = e.prompt_tokens("Say something about the sea.")
    a = e.tokenize("The sea is")
    b = e.tokenize(" deep and blue.")
    whole = e.score(x, a + b)
    parts = e.score(x, a) + e.score(x + a, b)
    assert np.allclose(whole, parts, atol=TOL)
    assert e.check_cache() == []


def test_score_refuses_control_tokens_and_stays_clean(f16_engine):
    e = f16_engine
    x = e.prompt_tokens("Hello")
    with pytest.raises(ValueError):
        e.score(x, [e.aspd.title_open] + e.tokenize("x"))
    with pytest.raises(ValueError):
        e.score([], e.tokenize("x"))
    assert e.score(x, []) == []
    assert e.check_cache() == []


def test_independence_scores_one_per_later_branch(f16_engine):
    e = f16_engine
    block = Block([Branch("Red", "1. **Red**: the color of fire.\n"),
                   Branch("Blue", "2. **Blue**: the color of the sky.\n"),
                   Branch("Green", "3. **Green**: the color of grass.\n")])
    scores = block_scores(e, e.prompt_tokens("Name three colors."), "Colors:\n\n", block)
    assert len(scores) == 2
    assert all(s.alone < 0 and s.with_siblings < 0 and s.tokens > 0 for s in scores)
    assert e.check_cache() == []
    assert split_lead("2. **Blue**: the sky.\n") == ("2. **Blue**: ", "the sky.\n")
