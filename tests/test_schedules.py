"""Parallel decoding changes speed, not content: ``sequential`` and ``parallel`` give the same tokens
(f16 model, docs/format.md section 8), on several structures."""

import numpy as np
import pytest

from aspd_local.bench.script import FREE, Script, block_script

PROMPT = "Describe each of these briefly."


def _both(engine, serial, branches, **kw):
    # both runs must find the prompt in the same state: the engine keeps a prompt's KV cells for the next
    # request, and a last prompt token decoded alone rather than inside the prefill batch differs by f16
    # noise (docs/format.md section 8) -- harmless under greedy, but a sampled draw near a boundary can flip on it
    # -- and so must the KV cache's layout: llama.cpp rounds attention by the order of the cells a sequence
    # holds in the cache, so a run whose cells landed elsewhere (after other requests) can differ by the
    # same noise; each run starts from an empty cache
    out = {}
    for mode in ("sequential", "parallel"):
        engine.clear_cache()
        engine.generate(PROMPT, mode="ar", max_tokens=1, keep=False)
        r = engine.generate(PROMPT, mode=mode, max_tokens=200, processors=[Script(serial, branches)], keep=False,
                            **kw)
        assert engine.check_cache() == []
        out[mode] = r
    return out["sequential"], out["parallel"]


STRUCTURES = {
    "one_branch": (["Overview"], [12]),
    "six_branches": (["Red", "Green", "Blue", "Cyan", "Magenta", "Yellow"], [8] * 6),
    "uneven_lengths": (["Short", "Long", "Middle"], [2, 30, 7]),
}


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_sequential_equals_parallel(f16_engine, name):
    titles, lens = STRUCTURES[name]
    serial, branches = block_script(f16_engine, titles, lens)
    serial += [FREE] * 4 + [f16_engine.model.eos]
    seq, par = _both(f16_engine, serial, branches)
    assert seq.tokens == par.tokens
    assert seq.text == par.text
    assert par.stats.blocks == 1 and par.stats.branches == len(titles)
    assert [b.token_counts for b in par.blocks] == [b.token_counts for b in seq.blocks]
    # the model wrote every branch's content itself: lengths as scripted, plus prefix and close
    prefix_lens = [1 + len(f16_engine.tokenize(t + ": ")) for t in titles]
    assert par.blocks[0].token_counts == [p + n + 1 for p, n in zip(prefix_lens, lens)]
    # parallel really batched the branches: fewer decode calls than sequential
    if len(titles) > 1:
        assert par.stats.decode_calls < seq.stats.decode_calls
        assert max(par.stats.batch_sizes) >= len(titles)


def test_two_blocks_in_one_answer(f16_engine):
    a = f16_engine.aspd
    tok = f16_engine.tokenize
    serial, branches = block_script(f16_engine, ["Pros", "Cons"], [9, 5])
    serial += [FREE] * 3
    for t in ("First", "Second", "Third"):
        serial += [a.title_open] + tok(t) + [a.title_close]
    serial += [a.para_open, FREE, FREE, f16_engine.model.eos]
    branches.update({(1, 0): [FREE] * 4 + [a.branch_close], (1, 1): [FREE] * 11 + [a.branch_close],
                     (1, 2): [FREE] * 6 + [a.branch_close]})
    seq, par = _both(f16_engine, serial, branches)
    assert par.stats.blocks == 2 and par.stats.branches == 5
    assert seq.tokens == par.tokens and seq.text == par.text


class StreamLogits:
    """Replaces the model's logits with a distribution that depends only on the stream (serial text or
    which branch) and the stream's own tokens so far. Real logits of a token decoded in a batch of 3 and
    in a batch of 1 differ by f16 noise (docs/format.md section 8), and a sampled draw that lands near a boundary
    flips on it; with these logits any difference between the schedules is the sampler's own."""

    def __call__(self, info, logits):
        key = -1 if info.branch is None else 1000 * info.block + info.branch
        rng = np.random.default_rng([key + 1, len(info.tokens), info.tokens[-1] if info.tokens else 0])
        logits[:] = -1e4
        logits[1000:1064] = rng.normal(0.0, 2.0, 64)


def test_sampling_is_schedule_independent(f16_engine):
    """Each branch samples with its own seeded state, so a fixed seed gives the same text either way."""
    serial, branches = block_script(f16_engine, ["Alpha", "Beta", "Gamma"], [10, 6, 14])
    serial += [FREE] * 5 + [f16_engine.model.eos]
    out = {}
    for mode in ("sequential", "parallel"):
        out[mode] = f16_engine.generate(PROMPT, mode=mode, max_tokens=200, keep=False, temperature=0.9, seed=1234,
                                        top_k=40, processors=[StreamLogits(), Script(serial, branches)])
        assert f16_engine.check_cache() == []
    seq, par = out["sequential"], out["parallel"]
    assert seq.tokens == par.tokens and seq.text == par.text
    assert par.stats.branches == 3 and par.stats.decode_calls < seq.stats.decode_calls
    # really sampled: another seed draws other tokens from the same distributions
    other = f16_engine.generate(PROMPT, mode="parallel", max_tokens=200, keep=False, temperature=0.9, seed=99,
                                top_k=40, processors=[StreamLogits(), Script(serial, branches)])
    assert other.tokens != par.tokens
