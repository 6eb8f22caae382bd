"""The ASPD pipeline on a second architecture: SmolLM2-135M-Instruct (llama, tied embeddings, full
attention, a chat template; aspd_local.bases).

- Training and serving see the same thing (as tests/test_train_serving.py for Gemma 3): for one
  structured answer, torch's logits under the training mask and position ids equal the engine's (fork /
  join, branches in parallel) on the same f16 weights, with the six ASPD tokens on SmolLM2's unused
  specials.
- The torch-free build merges a LoRA delta into the right rows of a llama GGUF: llama.cpp stores q/k
  rows permuted, and the built model's logits equal those of the delta applied in torch (peft).

The f16 copy of the base and its float model are made once into the cache's test folder (about a minute
the first time; then about 20 s for this file)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from aspd_local import bases  # noqa: E402
from aspd_local.aspd.encode import RowEncoder  # noqa: E402
from aspd_local.llama.quantize import quantize  # noqa: E402
from aspd_local.models import cache_dir  # noqa: E402
from aspd_local.train.base import float_model_dir, load_float_model  # noqa: E402
from aspd_local.train.lm import AspdLM  # noqa: E402
from aspd_local.train.mask import collate  # noqa: E402
from conftest import make_engine  # noqa: E402
from test_train_serving import ROW, TOL, _engine_run, _engine_vs_torch, _predecessor_rows  # noqa: E402

SMOL = bases.get("smollm2-135m")
if not SMOL.installed():
    pytest.skip(f"{SMOL.package} is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def smol_f16() -> str:
    path = cache_dir() / "test" / "smollm2-135m-f16.gguf"
    if not path.exists():
        quantize(str(SMOL.gguf()), str(path), "f16")
    return str(path)


@pytest.fixture(scope="module")
def hf_dir(smol_f16):
    return float_model_dir(smol_f16, root=cache_dir() / "test", progress=False)


@pytest.fixture(scope="module")
def engine(smol_f16):
    e = make_engine(smol_f16, n_threads=1, aspd_tokens=SMOL.aspd_tokens)
    yield e
    e.close()


@pytest.fixture(scope="module")
def lm(hf_dir, engine):
    return AspdLM(load_float_model(hf_dir), engine.aspd.ids)


@pytest.fixture(scope="module")
def served(engine):
    enc = RowEncoder(engine.model, engine.aspd, engine.chat_format).encode(ROW)
    r, seen = _engine_run(engine, enc)
    assert engine.check_cache() == []
    return enc, r, seen


def test_llama_model_as_trained(lm):
    cfg = lm.model.config
    assert cfg.model_type == "llama" and cfg.tie_word_embeddings
    assert lm.sliding_window is None and lm.softcap is None  # full attention only, no logit soft-capping
    assert getattr(lm.embed, "embed_scale", None) is None  # no embedding scale (Gemma multiplies by sqrt(d))


def test_training_encoding_is_the_engine_stream(engine, served):
    enc, r, _ = served
    assert enc.tokens[:enc.n_prompt] == engine.prompt_tokens(ROW["messages"])
    assert engine.model.token_text(enc.tokens[-1]) == "<|im_end|>"  # the chat template's end of turn
    assert r.tokens + [enc.tokens[-1]] == enc.tokens[enc.n_prompt:]
    assert r.text == ROW["answer"]


def test_torch_logits_with_training_mask_equal_engine_logits(engine, lm, served):
    enc, _, seen = served
    batch = collate([enc], engine.aspd, pad_id=0, dtype=torch.float32, sliding_window=lm.sliding_window)
    assert set(batch.masks) == {"full_attention"}
    with torch.no_grad():
        logits = lm.logits(batch)[0].numpy()
    rows = _predecessor_rows(enc, engine.aspd)
    worst = _engine_vs_torch(seen, logits, rows)
    assert len(seen) == len(rows) > 60
    assert worst < TOL, worst
    # the comparison has teeth: with branches seeing their siblings, the last branch's logits move by units
    n = len(enc.tokens)
    causal = torch.zeros(n, n).masked_fill_(~torch.tril(torch.ones(n, n, dtype=torch.bool)), torch.finfo().min)
    batch.masks = {"full_attention": causal[None, None]}
    with torch.no_grad():
        wrong = lm.logits(batch)[0].numpy()
    assert max(float(np.max(np.abs(got - wrong[rows[(key, n)]]))) for key, n, got in seen if key == (0, 2)) > 1.0


def test_delta_built_without_torch_on_llama(tmp_path, smol_f16, hf_dir, engine):
    """A delta with large random LoRA weights and control rows, built onto the f16 base with numpy (q/k rows
    permuted as llama.cpp stores them), gives the logits of the same delta applied in torch."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from aspd_local.build import _permute_rows, build_gguf
    from aspd_local.train.delta import apply_delta, base_info, save_delta
    from aspd_local.train.model import build_trainable
    from aspd_local.train.recipe import Recipe

    ids = engine.aspd
    recipe = Recipe(dtype="float32", aspd_tokens=SMOL.aspd_tokens, lora_r=4, lora_alpha=8)
    lm, peft_model = build_trainable(hf_dir, recipe, ids.ids, model=load_float_model(hf_dir))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        lm.rows.copy_(torch.randn(lm.rows.shape, generator=g) * float(lm.embed.weight.std()))
    delta = save_delta(peft_model, lm, ids, tmp_path / "delta", base=base_info(smol_f16), recipe=recipe,
                       data_stats={}, log=[], timings={})
    out = build_gguf(delta, tmp_path / "built.gguf", base_gguf=smol_f16, outtype="f16", progress=False)

    merged = apply_delta(load_float_model(hf_dir), delta)
    cfg = merged.config
    tensors = {t.name: t for t in GGUFReader(str(out)).tensors}

    def gguf_weight(name):
        t = tensors[name]
        return np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(
            tuple(int(d) for d in reversed(t.shape.tolist())))

    layer = merged.model.layers[3].self_attn
    for gname, w, heads in (("blk.3.attn_q.weight", layer.q_proj.weight, cfg.num_attention_heads),
                            ("blk.3.attn_k.weight", layer.k_proj.weight, cfg.num_key_value_heads)):
        want = w.detach().numpy()
        got = gguf_weight(gname)
        assert np.abs(got - _permute_rows(want, heads)).max() < 2e-3, gname  # f16 rounding only
        assert np.abs(got - want).max() > 0.05, gname  # unpermuted rows would not fit
    emb = gguf_weight("token_embd.weight")
    np.testing.assert_allclose(emb[list(ids.ids)], merged.get_input_embeddings().weight[list(ids.ids)].detach().numpy(),
                               atol=2e-3)

    # the whole chain: the built model, served with its own ASPD metadata, gives torch's logits under the
    # training mask at every position of the structured answer (control tokens in and out)
    built = make_engine(str(out), n_threads=1, aspd_tokens=None)
    try:
        assert built.aspd is not None and tuple(built.aspd.ids) == tuple(ids.ids)
        enc = RowEncoder(built.model, built.aspd, built.chat_format).encode(ROW)
        _, seen = _engine_run(built, enc)
    finally:
        built.close()
    lm_built = AspdLM(merged, ids.ids)
    batch = collate([enc], ids, pad_id=0, dtype=torch.float32, sliding_window=None)
    with torch.no_grad():
        logits = lm_built.logits(batch)[0].numpy()
    rows = _predecessor_rows(enc, ids)
    worst = _engine_vs_torch(seen, logits, rows)
    assert len(seen) == len(rows) > 60
    assert worst < TOL, worst
