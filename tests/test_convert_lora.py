"""A PEFT LoRA adapter (random, so it changes the model a lot) on a tiny llama, merged while converting:
llama.cpp's logits equal those of transformers' merged model (peft merge_and_unload), f32, max abs
difference < 0.05 (measured 0.003), the same top-1 everywhere the merged model leads by > 0.05; and
they are far from the base model's, so the adapter was really applied."""

from __future__ import annotations

import numpy as np
import pytest

from test_convert_fixtures import hf_logits, llama_logits, make_model, make_tokenizer

from convert import ConvertError, convert_checkpoint

TEXTS = ["The quick brown fox jumps over the lazy dog and runs far away.", "Numbers 12345 and café, naïve."]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("lora")
    tok = make_tokenizer("llama-spm", d / "base")
    model = make_model("llama", len(tok), d / "base", tokenizer=tok)
    return d, tok, model


def _adapter(model, out_dir, seed: int, **kw):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=False, **kw)
    peft_model = get_peft_model(model, cfg)
    peft_model.save_pretrained(out_dir)
    return peft_model


@pytest.mark.parametrize("rslora", [False, True])
def test_merged_logits_match_transformers(base, rslora):
    import copy

    d, tok, model = base
    seqs = [tok(t)["input_ids"] for t in TEXTS]
    base_ref = hf_logits(model, seqs)
    adapter = d / f"adapter-{rslora}"
    merged = _adapter(copy.deepcopy(model), adapter, seed=1, use_rslora=rslora).merge_and_unload()
    merged.eval()
    ref = hf_logits(merged, seqs)
    out = d / f"merged-{rslora}.gguf"
    convert_checkpoint(d / "base", out, "f32", lora_dir=adapter, progress=False)
    got = llama_logits(out, seqs)
    print(f"\n[convert] LoRA (rslora={rslora}) f32 vs merged transformers: max abs logit diff "
          f"{max(float(np.abs(a - b).max()) for a, b in zip(got, ref)):.4f}; merged vs base "
          f"{max(float(np.abs(c - b).max()) for c, b in zip(base_ref, ref)):.2f}")
    for a, b, c in zip(got, ref, base_ref):
        assert float(np.abs(a - b).max()) < 0.05
        top2 = np.sort(b, axis=-1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 0.05
        assert (a.argmax(-1) == b.argmax(-1))[clear].all()
        assert float(np.abs(c - b).max()) > 1.0  # the adapter matters


def test_adapter_for_another_base_is_refused(base, tmp_path):
    d, tok, _ = base
    other = make_model("llama", len(tok), tmp_path / "other", hidden_size=32, intermediate_size=64)
    _adapter(other, tmp_path / "adapter", seed=2)
    out = tmp_path / "out" / "m.gguf"
    out.parent.mkdir()
    with pytest.raises(ConvertError, match=r"does not match the base model: .* is \(\d+, 64\) in the base, "
                                           r"the adapter was trained on \(\d+, 32\)"):
        convert_checkpoint(d / "base", out, "f32", lora_dir=tmp_path / "adapter", progress=False)
    assert list(out.parent.iterdir()) == []
