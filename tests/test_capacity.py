"""One way to run out of room. A context whose ``llama_decode`` returns 1 (no room for the batch: llama.cpp
then writes nothing) in serial text, inside a block, during a prompt and during a draft: the step is
retried smaller first (no drafts, half the prompt rows, half the requests), and a request whose own rows
find no room even alone ends with finish reason "context" and keeps what it wrote. Never an exception;
the KV mirror matches llama.cpp afterwards, and the engine goes on serving."""

from __future__ import annotations

import threading

import pytest

from aspd_local.bench.script import Script, block_script
from aspd_local.llama.context import KvFull
from conftest import make_engine

PROMPT = "Count from 1 to 40, separated by commas."
REPEAT = ("Copy this text exactly, twice:\nalpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu\n"
          "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu\n")


class Refuse:
    """Stands in for ``Context.decode``: returns 1 (KvFull) for the batches ``when(batch)`` picks."""

    def __init__(self, ctx, when):
        self.ctx, self.when, self.real = ctx, when, ctx.decode
        self.refused = 0
        ctx.decode = self

    def __call__(self, batch=None):
        batch = batch or self.ctx.batch
        if self.when(batch):
            self.refused += 1
            raise KvFull()
        return self.real(batch)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        del self.ctx.decode  # the real method again


@pytest.fixture(scope="module")
def engine(f16_path):
    e = make_engine(f16_path, n_threads=1)
    yield e
    e.close()


@pytest.fixture(scope="module")
def spec(f16_path):
    e = make_engine(f16_path, speculate="suffix", suffix_budget="all", n_threads=1)
    yield e
    e.close()


def _gen(e, prompt, **kw):
    kw.setdefault("mode", "ar")
    kw.setdefault("max_tokens", 40)
    return e.generate(prompt, keep=False, **kw)


def test_serial_text_that_finds_no_room_ends_with_what_it_wrote(engine):
    ref = _gen(engine, PROMPT)
    calls = [0]

    def after_ten(batch):
        calls[0] += 1
        return calls[0] > 11  # the prompt, then ten answer tokens; then never any room

    with Refuse(engine.ctx, after_ten) as r:
        got = _gen(engine, PROMPT)
    assert r.refused >= 1
    assert got.finish_reason == "context"
    assert got.tokens == ref.tokens[:10] and ref.text.startswith(got.text)
    assert engine.check_cache() == []
    assert _gen(engine, PROMPT).tokens == ref.tokens  # and the engine serves on


def test_a_prompt_is_retried_in_halves_before_it_fails(engine):
    long = "Here is a list of words: " + ", ".join(f"word{i}" for i in range(120)) + ". Repeat the last five."
    n = len(engine.prompt_tokens(long))
    assert n > 200
    ref = _gen(engine, long, max_tokens=8)
    engine.clear_cache()  # (the whole prompt is decoded again, not found cached)
    with Refuse(engine.ctx, lambda b: b.n > 40) as r:  # room for no more than 40 rows at once
        got = _gen(engine, long, max_tokens=8)
    assert r.refused >= 1 and got.tokens == ref.tokens and got.finish_reason == ref.finish_reason
    assert got.stats.prompt_decode_calls > n // 40
    engine.clear_cache()
    with Refuse(engine.ctx, lambda b: True):  # no room at all: the answer is empty, nothing fails
        got = _gen(engine, long, max_tokens=8)
    assert got.finish_reason == "context" and got.tokens == [] and got.text == ""
    assert engine.check_cache() == []


def test_a_draft_that_finds_no_room_is_dropped_and_the_answer_is_the_same(spec):
    ref = _gen(spec, REPEAT, speculate="none", max_tokens=48)
    with Refuse(spec.ctx, lambda b: b.n > 1) as r:  # only plain steps (one row) fit
        got = _gen(spec, REPEAT, speculate="suffix", max_tokens=48)
    assert r.refused >= 1, "no draft was tried: the test proves nothing"
    assert got.tokens == ref.tokens and got.finish_reason == ref.finish_reason
    assert got.stats.accepted_draft_tokens == 0
    assert spec.check_cache() == []


def test_a_block_that_finds_no_room_ends_every_branch_with_its_text(engine):
    serial, branches = block_script(engine, ["Greek", "Numbers", "Colours"], [30, 30, 30], lead="")
    full = threading.Event()

    def watch(info, logits):  # runs on the scheduler's thread before each sample
        if info.branch is not None and len(info.tokens) >= 5:
            full.set()

    ask = dict(mode="parallel", max_tokens=300, processors=[Script(serial + [engine.model.eos], branches), watch])
    with Refuse(engine.ctx, lambda b: full.is_set()) as r:
        h = engine.submit(PROMPT, keep=False, **ask)
        events = list(h)
        got = h.result()
    assert r.refused >= 1
    assert got.finish_reason == "context"
    assert len(got.blocks) == 1 and all(t.strip() for t in got.blocks[0].texts)  # each branch kept its text
    ends = [ev for ev in events if type(ev).__name__ == "BranchEnd"]
    assert len(ends) == 3 and {ev.reason for ev in ends} == {"context"}
    assert any(type(ev).__name__ == "BlockEnd" for ev in events)
    assert engine.check_cache() == []
    assert engine.generate(PROMPT, mode="ar", max_tokens=4, keep=False).finish_reason == "length"


def test_requests_decoded_together_are_split_before_any_ends(engine):
    prompts = [PROMPT, "Name the planets of the solar system.", "Spell the word banana backwards."]
    alone = [_gen(engine, p, max_tokens=16).tokens for p in prompts]
    with Refuse(engine.ctx, lambda b: len({s for i in range(b.n) for s in b._seq_rows[i][:b._n_seq[i]]}) > 1) as r:
        handles = [engine.submit(p, mode="ar", max_tokens=16, keep=False) for p in prompts]
        together = [h.result().tokens for h in handles]
    assert r.refused >= 1  # some step held several requests' rows, was refused and split
    assert together == alone
    assert engine.check_cache() == []
