"""With sampling, speculation keeps the output distribution exact.

The acceptance rule draws the target's own token at each tree node and follows the child equal to the
draw, so each stream consumes the same random numbers in the same order as plain decoding: at a fixed
seed the tokens are the same. And over many seeds the first tokens follow the model's own
distribution, which is computed here exactly from plain-decoding logits (f16, Gemma 3 270M).

Tolerance: K = 8 outcomes (top_k = 2, three tokens), N = 150 draws. By the Bretagnolle-Huber-Carol
inequality P(TV(empirical, true) > eps) <= 2^K exp(-2 N eps^2); eps = 0.204 makes that <= 1e-3. An
acceptance rule that favours the draft moves the distribution far more (taking the draft whenever it
is one of the two candidates shifts the mass of the drafted token by about its complement, here 0.3+).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from aspd_local.bench.script import Script
from conftest import make_engine

PROMPT = "red blue red green blue red blue green red blue red green blue red blue green red blue"
SAMPLING = dict(temperature=1.0, top_k=2, top_p=1.0, min_p=0.0)
N, K, DELTA = 150, 8, 1e-3
EPS = math.sqrt((K * math.log(2) + math.log(1 / DELTA)) / (2 * N))


@pytest.fixture(scope="module")
def engine(f16_path):
    # one thread: llama.cpp's spinning thread pool crawls on a loaded 2-core machine, and the tokens
    # do not depend on the thread count
    e = make_engine(f16_path, speculate="suffix", suffix_budget="all", n_threads=1)
    yield e
    e.close()


def _probs(logits: np.ndarray) -> dict[int, float]:
    """What the sampler draws from with SAMPLING: the top two logits, softmax at the temperature."""
    top = np.argsort(-logits, kind="stable")[:2]
    w = np.exp((logits[top] - logits[top[0]]) / SAMPLING["temperature"])
    w /= w.sum()
    return {int(t): float(p) for t, p in zip(top, w)}


def _logits_after(e, tokens):
    rec = Script([])
    rec.record = True
    e.generate(tokens, chat=False, mode="ar", max_tokens=1, speculate="none", keep=False, processors=[rec])
    return rec.seen[0][2]


def test_same_seed_same_tokens(engine):
    for seed in range(8):
        plain = engine.generate(PROMPT, chat=False, mode="ar", max_tokens=12, speculate="none", keep=False,
                                seed=seed, **SAMPLING)
        spec = engine.generate(PROMPT, chat=False, mode="ar", max_tokens=12, speculate="suffix", keep=False,
                               seed=seed, **SAMPLING)
        assert spec.tokens == plain.tokens


def test_first_tokens_follow_the_model_distribution(engine):
    e = engine
    prompt = e.model.tokenize(PROMPT, add_special=True, parse_special=False)
    # the exact joint distribution of the first three tokens, from plain decoding
    exact: dict[tuple[int, ...], float] = {}
    p1 = _probs(_logits_after(e, prompt))
    for t1, a in p1.items():
        p2 = _probs(_logits_after(e, prompt + [t1]))
        for t2, b in p2.items():
            p3 = _probs(_logits_after(e, prompt + [t1, t2]))
            for t3, c in p3.items():
                exact[(t1, t2, t3)] = a * b * c
    assert len(exact) == K and abs(sum(exact.values()) - 1) < 1e-6
    counts: dict[tuple[int, ...], int] = {}
    accepted = 0
    for seed in range(10_000, 10_000 + N):
        r = e.generate(prompt, chat=False, mode="ar", max_tokens=3, speculate="suffix", keep=False, seed=seed,
                       **SAMPLING)
        key = tuple(r.tokens)
        counts[key] = counts.get(key, 0) + 1
        accepted += r.stats.accepted_draft_tokens
    assert set(counts) <= set(exact)
    # the drafts mattered: many third tokens were drawn from a draft node's logits
    assert accepted > N // 4, accepted
    tv = 0.5 * sum(abs(counts.get(k, 0) / N - p) for k, p in exact.items())
    assert tv <= EPS, (tv, EPS, counts, exact)
    # and the test has power: no outcome dominates, so a rule that favours the draft shows
    assert max(exact.values()) < 0.5
