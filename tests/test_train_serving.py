"""Training and serving see the same thing: for one structured answer, next-token logits from torch
(transformers, the training mask and position ids) equal those from the engine (llama.cpp, fork/join
layout, branches decoded in parallel) on the same f16 weights; and the training encoding is exactly
the token stream the engine produces, forced branch prefixes included."""

import numpy as np
import pytest
import torch

from aspd_local.aspd.encode import RowEncoder, branch_prefix
from aspd_local.aspd.layout import layout_of
from aspd_local.bench.script import Script
from aspd_local.models import cache_dir
from aspd_local.train.base import float_model_dir, load_float_model
from aspd_local.train.lm import AspdLM
from aspd_local.train.mask import collate
from conftest import make_engine

# f16 GGUF on llama.cpp vs the same weights in float32 torch: llama.cpp's f16 kernels and batch-size
# paths move logits by ~0.01-0.1 (docs/format.md sections 3 and 8); a wrong mask bit or position moves them by units.
TOL = 0.25

ROW = {
    "id": "tie",
    "messages": [{"role": "user", "content": "Name three fruits and say one thing about each."}],
    "segments": [
        {"type": "serial", "text": "Here are three fruits:\n\n"},
        {"type": "block", "branches": [
            {"title": "Apple", "content": "1. **Apple**: crisp and sweet, good for snacks.\n"},
            {"title": "Banana", "content": "2. **Banana**: soft.\n"},
            {"title": "Mango", "content": "3. **Mango**: juicy, fragrant, and rich in vitamin C, "
                                          "it is loved in summer.\n"},
        ]},
        {"type": "serial", "text": "\nAll three are healthy."},
    ],
}
ROW["answer"] = "Here are three fruits:\n\n" + "".join(b["content"] for b in ROW["segments"][1]["branches"]) + \
    "\nAll three are healthy."


@pytest.fixture(scope="module")
def engine(f16_path):
    # one thread: on a shared 2-core machine llama.cpp's spinning thread pool makes 2 threads ~30x slower
    e = make_engine(f16_path, n_threads=1)
    yield e
    e.close()


@pytest.fixture(scope="module")
def torch_f16(f16_path, engine):
    model = load_float_model(float_model_dir(f16_path, root=cache_dir() / "test"))
    return AspdLM(model, engine.aspd.ids)


@pytest.fixture(scope="module")
def served(engine):
    """(encoding, engine result, engine logits per step) of ROW, run once for the module."""
    e = engine
    enc = RowEncoder(e.model, e.aspd, e.chat_format).encode(ROW)
    r, seen = _engine_run(e, enc)
    assert e.check_cache() == []
    return enc, r, seen


def _engine_run(engine, encoded):
    """Drive the engine through the encoded answer with a forced script; returns (result, recorded logits)."""
    a = engine.aspd
    answer = encoded.tokens[encoded.n_prompt:]
    lay = layout_of(answer, a)
    serial = [t for t, br in zip(answer, lay.branch) if br is None and t != a.para_close]
    branches = {}
    for b, (_, spans) in enumerate(lay.blocks):
        for k, (s, e) in enumerate(spans):
            gen = [t for t, g in zip(answer[s:e], encoded.generated[encoded.n_prompt + s:encoded.n_prompt + e]) if g]
            branches[(b, k)] = gen
    script = Script(serial, branches)
    script.record = True
    r = engine.generate(encoded.tokens[:encoded.n_prompt], mode="parallel", max_tokens=400, processors=[script],
                        keep=False)
    return r, script.seen


def _predecessor_rows(encoded, ids):
    """For each engine step (stream key, index), the flat row whose logits the engine sampled it from."""
    n0 = encoded.n_prompt
    answer = encoded.tokens[n0:]
    lay = layout_of(answer, ids)
    out = {}
    serial = [i for i, br in enumerate(lay.branch) if br is None and answer[i] != ids.para_close]
    for n, i in enumerate(serial):
        out[(None, n)] = n0 + i - 1
    for b, (_, spans) in enumerate(lay.blocks):
        for k, (s, e) in enumerate(spans):
            gen = [i for i in range(s, e) if encoded.generated[n0 + i]]
            for n, i in enumerate(gen):
                out[((b, k), n)] = n0 + i - 1
    return out


def _engine_vs_torch(seen, logits, rows) -> float:
    """The largest logit difference between each engine step and torch's row for it. The same top-1 is
    asserted, except at a near tie: where torch itself puts the engine's top-1 within TOL of its own (f16
    against float32 arithmetic may order two such tokens either way)."""
    worst = 0.0
    for key, n, got in seen:
        want = logits[rows[(key, n)]]
        g, w = int(np.argmax(got)), int(np.argmax(want))
        assert g == w or want[w] - want[g] < TOL, (key, n, g, w, float(want[w] - want[g]))
        worst = max(worst, float(np.max(np.abs(got - want))))
    return worst


def test_training_encoding_is_the_engine_stream(engine, served):
    e = engine
    enc, r, _ = served
    assert enc.tokens[:enc.n_prompt] == e.prompt_tokens(ROW["messages"])
    # the engine forced each branch prefix itself; the whole answer stream equals the training encoding
    assert r.tokens + [enc.tokens[-1]] == enc.tokens[enc.n_prompt:]
    assert r.text == ROW["answer"]
    answer = enc.tokens[enc.n_prompt:]
    for b in ROW["segments"][1]["branches"]:
        p = branch_prefix(b["title"], e.aspd, e.tokenize)
        assert any(answer[i:i + len(p)] == p for i in range(len(answer))), b["title"]


def test_torch_logits_with_training_mask_equal_engine_logits(engine, torch_f16, served):
    e, lm = engine, torch_f16
    enc, _, seen = served
    batch = collate([enc], e.aspd, pad_id=0, dtype=torch.float32, sliding_window=lm.sliding_window)
    with torch.no_grad():
        logits = lm.logits(batch)[0].numpy()
    rows = _predecessor_rows(enc, e.aspd)
    worst = _engine_vs_torch(seen, logits, rows)
    assert len(seen) == len(rows) > 60
    assert worst < TOL, worst
    print(f"\n{len(seen)} positions, same top-1 at every one, max abs logit difference {worst:.4f}")


def test_a_wrong_mask_is_detected(engine, torch_f16, served):
    """The comparison has teeth: letting branches see their siblings moves later branches' logits by units."""
    e, lm = engine, torch_f16
    enc, _, seen = served
    batch = collate([enc], e.aspd, pad_id=0, dtype=torch.float32, sliding_window=lm.sliding_window)
    n = len(enc.tokens)
    causal = torch.zeros(n, n).masked_fill_(~torch.tril(torch.ones(n, n, dtype=torch.bool)), torch.finfo().min)
    batch.masks = {k: causal[None, None].clone() for k in batch.masks}
    with torch.no_grad():
        logits = lm.logits(batch)[0].numpy()
    rows = _predecessor_rows(enc, e.aspd)
    worst = max(float(np.max(np.abs(got - logits[rows[(key, n)]]))) for key, n, got in seen if key == (0, 2))
    assert worst > 1.0
