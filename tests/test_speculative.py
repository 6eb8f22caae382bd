"""Suffix speculation is lossless: with it, greedy output is token-identical to plain decoding (f16,
docs/format.md section 8) in serial text and inside ASPD branches; the KV cache holds exactly
the committed tokens afterwards, also after a stream is cancelled mid-speculation; the global index
survives between engines and a damaged cache file is replaced."""

from __future__ import annotations

import os

import llama_cpp
import numpy as np
import pytest

from aspd_local import Caps
from aspd_local.bench.script import Script, block_script
from aspd_local.suffix.cache import save_index
from aspd_local.suffix.index import TokenIndex
from conftest import make_engine

CODE = ("def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n\n\n"
        "def volume(w, h, d):\n    return w * h * d\n")
PROMPTS = [  # (prompt, sampling overrides): repetitive ones, where drafts are accepted, and free text
    ("Copy this code exactly:\n" + CODE, {}),
    ("Count from 1 to 30, separated by commas.", {}),
    ("Fill in the template for each fruit. Template: 'NAME is a fruit. NAME is tasty.' Fruits: apple, pear, plum.", {}),
    ("Write a short story about a lighthouse keeper.", {"repeat_penalty": 1.3}),
    ("Explain how a bicycle works.", {"repeat_penalty": 1.2}),
    ("List the days of the week, then list them again in reverse.", {}),
]


@pytest.fixture(scope="module")
def spec_engine(f16_path):
    """Speculation on, verifying every proposed node (the widest trees: the strictest test). One thread:
    llama.cpp's spinning thread pool crawls on a loaded 2-core machine; tokens do not depend on it."""
    e = make_engine(f16_path, speculate="suffix", suffix_budget="all", n_threads=1)
    yield e
    e.close()


class Cells:
    """KV cells per sequence id, read from llama.cpp's per-sequence state size, which grows by a fixed
    number of bytes per cell. Calibrated on two prompt-only states (cells = prompt tokens)."""

    def __init__(self, engine):
        self.e = engine
        sizes = []
        for text in ("One two three.", "One two three four five six seven eight nine ten eleven."):
            toks = engine.prompt_tokens(text)
            engine.clear_cache()
            engine.generate(toks, max_tokens=1, speculate="none", keep=False)
            assert engine.cached_tokens() == [toks]
            sizes.append((len(toks), self.size(self.seq_of(toks))))
        (n1, s1), (n2, s2) = sizes
        self.per_cell = (s2 - s1) / (n2 - n1)
        self.header = s1 - n1 * self.per_cell
        assert self.per_cell > 0 and self.per_cell == int(self.per_cell)
        self.empty = self.size(max(set(range(engine.ctx.n_seq_max)) - set(engine.cache.lines)))

    def seq_of(self, tokens) -> int:
        return next(s for s, line in self.e.cache.lines.items() if line.tokens == tokens)

    def size(self, seq: int) -> int:
        return llama_cpp.llama_state_seq_get_size(self.e.ctx.ptr, seq)

    def check(self) -> None:
        """Each cached line's sequence holds exactly its tokens; every other sequence id holds nothing."""
        e = self.e
        assert e.check_cache() == []
        lines = e.cache.lines
        for s in range(e.ctx.n_seq_max):
            want = self.header + self.per_cell * len(lines[s].tokens) if s in lines else self.empty
            assert self.size(s) == want, f"sequence {s} holds other cells than its tokens"


@pytest.fixture(scope="module")
def cells(spec_engine):
    return Cells(spec_engine)


def _gen(e, prompt, speculate, **kw):
    return e.generate(prompt, speculate=speculate, keep=False, **kw)


def test_serial_greedy_is_lossless(spec_engine, cells):
    e = spec_engine
    accepted = rejected = 0
    for prompt, kw in PROMPTS:
        plain = _gen(e, prompt, "none", mode="ar", max_tokens=48, **kw)
        spec = _gen(e, prompt, "suffix", mode="ar", max_tokens=48, **kw)
        cells.check()
        assert spec.tokens == plain.tokens, prompt
        assert spec.text == plain.text and spec.finish_reason == plain.finish_reason
        s = spec.stats
        assert s.tokens == plain.stats.tokens
        assert s.decode_calls == plain.stats.decode_calls - s.accepted_draft_tokens  # one call per accepted run
        accepted += s.accepted_draft_tokens
        rejected += s.draft_tokens - s.accepted_draft_tokens
    # the test proves something only if drafts were both accepted and rejected
    assert accepted > 50 and rejected > 10, (accepted, rejected)


def _next_logits(e, tokens):
    """The logits after ``tokens``, decoding only the last one on top of what the cache holds."""
    rec = Script([])
    rec.record = True
    e.generate(tokens, chat=False, mode="ar", max_tokens=1, speculate="none", keep=False, processors=[rec])
    return rec.seen[0][2]


def test_branching_drafts_keep_the_accepted_path(spec_engine, cells):
    """Draft trees with many leaf paths, where the right continuation is sometimes the likeliest child
    and sometimes not: only the accepted path's cells may join sequence 0. Checked by what the cache
    computes next: after the speculative answer it must give the logits it gives after the plain one
    (f16 batch-size noise is about 0.01; one wrong cell moves them far more)."""
    e = spec_engine
    toks = e.prompt_tokens(PROMPTS[3][0])
    plain = e.generate(toks, mode="ar", max_tokens=40, repeat_penalty=1.3, speculate="none")
    t = plain.tokens
    probe = e.tokenize(" And")
    ref = _next_logits(e, toks + t + probe)
    rng = np.random.default_rng(0)
    seqs = [t]
    for n, i in enumerate(range(len(t) - 4, 0, -5)):
        # a wrong continuation at every 5th token, each time more frequent than the right one (which
        # also counts the wrong ones that branch off later): the right child ranks second
        seqs += [t[:i] + rng.integers(1000, 5000, size=6).tolist()] * (3 * 2 ** n)
    old = e.set_global_index(TokenIndex.from_sequences(seqs))
    try:
        e.clear_cache()
        spec = e.generate(toks, mode="ar", max_tokens=40, repeat_penalty=1.3, speculate="suffix")
    finally:
        e.set_global_index(old)
    cells.check()
    assert spec.tokens == plain.tokens and e.cached_tokens()[0] == toks + t
    s = spec.stats
    assert s.accepted_draft_tokens > 20 and s.draft_tokens > s.accepted_draft_tokens
    got = _next_logits(e, toks + t + probe)
    assert float(np.max(np.abs(got - ref))) < 0.1


def test_parallel_mode_serial_text_is_lossless(spec_engine, cells):
    """In parallel mode (no block opened) serial text speculates the same way."""
    e = spec_engine
    prompt = PROMPTS[0][0]
    plain = _gen(e, prompt, "none", mode="parallel", max_tokens=48)
    spec = _gen(e, prompt, "suffix", mode="parallel", max_tokens=48)
    cells.check()
    assert spec.tokens == plain.tokens and spec.stats.accepted_draft_tokens > 0


def _block_run(e, titles, lens, mode, speculate, prompt):
    serial, branches = block_script(e, titles, lens, lead="")
    serial += [e.model.eos]  # the block is the whole answer: every draft is a branch's
    return e.generate(prompt, mode=mode, max_tokens=400, speculate=speculate, keep=False,
                      processors=[Script(serial, branches)])


BLOCK_PROMPT = ("Repeat each line exactly.\nalpha beta gamma delta epsilon zeta eta theta\n"
                "one two three four five six seven eight nine ten\nred green blue cyan magenta yellow black white")


@pytest.mark.parametrize("titles,lens", [
    (["Greek", "Numbers", "Colours"], [24, 24, 24]),
    (["First", "Second"], [3, 40]),  # uneven: one branch runs alone after the other closed
])
def test_branches_are_lossless(spec_engine, cells, titles, lens):
    e = spec_engine
    plain = _block_run(e, titles, lens, "parallel", "none", BLOCK_PROMPT)
    cells.check()
    for mode in ("parallel", "sequential"):
        spec = _block_run(e, titles, lens, mode, "suffix", BLOCK_PROMPT)
        cells.check()
        assert spec.tokens == plain.tokens, mode
        assert [b.token_counts for b in spec.blocks] == [b.token_counts for b in plain.blocks]
        assert [b.texts for b in spec.blocks] == [b.texts for b in plain.blocks]
        assert spec.stats.blocks == 1 and spec.stats.draft_tokens > 0
        assert spec.stats.accepted_draft_tokens > 0, "no branch draft was accepted: the test proves nothing"
    # the drafts really shared the branches' batch: some call had more tokens than branches
    assert max(spec.stats.batch_sizes) > len(titles)


def test_branch_caps_hold_with_drafts(spec_engine, cells):
    """A branch reaching its token cap mid-draft stops there and closes, exactly as without drafts."""
    e = spec_engine
    serial, branches = block_script(e, ["Greek", "Numbers"], [None, None], lead="")
    serial += [e.model.eos]
    out = {}
    for sp in ("none", "suffix"):
        out[sp] = e.generate(BLOCK_PROMPT, mode="parallel", speculate=sp, keep=False,
                             caps=Caps(max_tokens=400, max_branch_tokens=17),
                             processors=[Script(serial, branches)])
        cells.check()
    assert out["suffix"].tokens == out["none"].tokens
    assert out["suffix"].stats.accepted_draft_tokens > 0


def test_max_tokens_is_exact_with_drafts(spec_engine, cells):
    e = spec_engine
    for n in (1, 2, 7, 23):
        plain = _gen(e, PROMPTS[1][0], "none", mode="ar", max_tokens=n)
        spec = _gen(e, PROMPTS[1][0], "suffix", mode="ar", max_tokens=n)
        cells.check()
        assert spec.tokens == plain.tokens and len(spec.tokens) == n
        assert spec.finish_reason == plain.finish_reason == "length"


def test_kept_answer_is_exactly_the_committed_tokens(spec_engine, cells):
    e = spec_engine
    toks = e.prompt_tokens(PROMPTS[0][0])
    r = e.generate(toks, mode="ar", max_tokens=40, speculate="suffix")
    assert r.stats.accepted_draft_tokens > 0
    assert e.cached_tokens()[0] == toks + r.tokens
    cells.check()
    # the next request reuses that cache and still matches plain decoding
    follow = e.generate(toks + r.tokens + e.tokenize("\nAgain:\n"), chat=False, mode="ar", max_tokens=24,
                        speculate="suffix", keep=False)
    cells.check()
    e.clear_cache()
    ref = e.generate(toks + r.tokens + e.tokenize("\nAgain:\n"), chat=False, mode="ar", max_tokens=24,
                     speculate="none", keep=False)
    assert follow.tokens == ref.tokens


@pytest.mark.parametrize("where", ["serial", "branch"])
def test_cancel_mid_speculation_leaves_a_clean_cache(spec_engine, cells, where):
    e = spec_engine
    handle = None
    caught = []

    def cancel_while_a_draft_is_open(info, logits):  # runs on the scheduler's thread, while verifying
        if len(info.tokens) > 4 and any(s.lane.open_drafts for s in e.scheduler._active) and not caught:
            caught.append(info.branch)
            handle.cancel()

    if where == "serial":
        prompt = PROMPTS[0][0]
        handle = e.submit(prompt, mode="ar", max_tokens=64, speculate="suffix",
                          processors=[cancel_while_a_draft_is_open])
    else:
        prompt = BLOCK_PROMPT
        serial, branches = block_script(e, ["Greek", "Numbers", "Colours"], [24, 24, 24], lead="")
        handle = e.submit(prompt, mode="parallel", max_tokens=400, speculate="suffix",
                          processors=[Script(serial + [e.model.eos], branches), cancel_while_a_draft_is_open])
    r = handle.result()
    assert caught, "never saw an open draft"
    assert r.finish_reason == "cancelled" and (caught[0] is None) == (where == "serial")
    cells.check()
    assert e.cached_tokens()[0] == e.prompt_tokens(prompt)  # the cancelled answer left nothing behind
    # the engine goes on as if nothing happened
    plain = _gen(e, PROMPTS[1][0], "none", mode="ar", max_tokens=16)
    spec = _gen(e, PROMPTS[1][0], "suffix", mode="ar", max_tokens=16)
    assert spec.tokens == plain.tokens
    cells.check()


def test_global_index_persists_and_damage_is_replaced(f16_path, tmp_path, monkeypatch):
    monkeypatch.setenv("ASPD_LOCAL_CACHE", str(tmp_path))
    prompt = "Say: the quick brown fox jumps over the lazy dog, twice."
    e = make_engine(f16_path, speculate="suffix", suffix_budget="all", suffix_cache=True, n_threads=1)
    try:
        path = e._spec.index_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:  # a damaged file from an earlier crash
            fh.write(b"PK\x03\x04 not really a zip")
        first = e.generate(prompt, mode="ar", max_tokens=24, keep=False)
        assert e.global_index().n_sequences == 1
    finally:
        e.close()
    e = make_engine(f16_path, speculate="suffix", suffix_budget="all", suffix_cache=True, n_threads=1)
    try:
        idx = e.global_index()  # loaded from the file the first engine wrote
        assert [s.tolist() for s in idx.sequences()] == [first.tokens]
        again = e.generate(prompt, mode="ar", max_tokens=24, keep=False)
        assert again.tokens == first.tokens
        # the earlier answer is in the global index: the drafts come from it right away
        assert again.stats.accepted_draft_tokens >= len(first.tokens) // 2
        # a cache written for another model is ignored, not used
        e._spec.saver.flush()  # (the saver's write of the answer above lands first)
        save_index(TokenIndex.from_sequences([[1, 2, 3]]), path, model_key="some-other-model")
        e.set_global_index(None)
        assert e.global_index().n_tokens == 0
    finally:
        e.close()


def test_global_index_is_bounded(f16_path):
    e = make_engine(f16_path, speculate="suffix", suffix_budget="all", suffix_cache_tokens=60, n_threads=1)
    try:
        for i in range(6):
            e.generate(f"Count from {i} to {i + 20}.", mode="ar", max_tokens=20, keep=False)
            assert e.global_index().n_tokens <= 60
        assert e.global_index().n_sequences < 6
    finally:
        e.close()
