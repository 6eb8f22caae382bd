"""``max_tokens`` is a hard cap in every mode: the answer's tokens (what the server reports as
``completion_tokens``: control tokens, titles and branch prefixes included) never exceed it. A block
opens only where its titles and a few tokens per branch still fit (else the answer goes on serially),
and a budget that runs out inside a block ends every branch cleanly with its text so far."""

from __future__ import annotations

import pytest

from aspd_local.bench.script import Script, block_script
from aspd_local.decoding.hybrid import MIN_BRANCH
from conftest import make_engine

LISTS = ["List five tips for sleeping better.", "Give me four reasons to learn a second language.",
         "Name three famous painters and one work of each."]


@pytest.fixture(scope="module")
def aspd_engine(aspd_f16_path):
    e = make_engine(aspd_f16_path, aspd_tokens=None, n_threads=1)
    yield e
    e.close()


@pytest.fixture(scope="module")
def base_engine(f16_path):
    e = make_engine(f16_path, n_threads=1)
    yield e
    e.close()


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_the_default_model_never_writes_past_max_tokens(aspd_engine, mode):
    e = aspd_engine
    blocks = 0
    for prompt in LISTS:
        for n in (8, 16, 24, 32, 64):
            r = e.generate(prompt, mode=mode, max_tokens=n, keep=False)
            assert len(r.tokens) <= n and r.stats.tokens == len(r.tokens), (prompt, n, len(r.tokens))
            for b in r.blocks:
                blocks += 1
                assert all(t.strip() for t in b.texts), (prompt, n, b.texts)  # no empty branch
            if len(r.tokens) < n:
                assert r.finish_reason == "stop"
    assert blocks > 0, "no block opened: the test proves nothing"
    assert e.check_cache() == []


def test_a_block_opens_only_where_its_branches_fit(base_engine):
    """A scripted block with three titles: under a small budget it does not open (the answer goes on
    serially); from some budget on it opens, and a branch its cap closes had room for MIN_BRANCH tokens."""
    e = base_engine
    serial, branches = block_script(e, ["Apples", "Pears", "Plums"], [None, None, None], lead="")
    script = lambda: [Script(serial + [e.model.eos], branches)]  # noqa: E731
    outcomes = {}
    for n in range(4, 80, 3):
        h = e.submit("Tell me about fruit.", mode="parallel", max_tokens=n, keep=False, processors=script())
        ends = [ev for ev in h if type(ev).__name__ == "BranchEnd"]
        r = h.result()
        assert len(r.tokens) <= n, (n, len(r.tokens))
        outcomes[n] = r
        for ev in ends:  # a branch its budget closed had room for at least MIN_BRANCH tokens
            if ev.reason == "cap":
                b = r.blocks[0]
                content = b.token_counts[ev.branch] - 2 - len(e.tokenize(b.titles[ev.branch] + e.aspd.separator))
                assert content >= MIN_BRANCH, (n, b.token_counts)
    opened = [n for n, r in outcomes.items() if r.blocks]
    assert opened and min(opened) > 4, "either no block opened or one opened with no room"
    assert all(not outcomes[n].blocks for n in outcomes if n < min(opened))
    assert e.check_cache() == []


def test_usage_never_exceeds_max_tokens_over_the_server(aspd_engine):
    from fastapi.testclient import TestClient

    from aspd_local.server.app import create_app

    with TestClient(create_app(aspd_engine)) as client:
        for n in (16, 32):
            body = client.post("/v1/chat/completions", json={
                "model": "default", "messages": [{"role": "user", "content": LISTS[0]}], "max_tokens": n,
                "temperature": 0, "aspd_mode": "parallel"}).json()
            assert body["usage"]["completion_tokens"] <= n, body["usage"]
