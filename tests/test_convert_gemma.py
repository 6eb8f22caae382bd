"""Gemma 3 270M round trip: the PyPI GGUF -> transformers float model -> HF directory -> our f16 GGUF.

The HF directory is built once (about a minute) and cached under cache_dir()/test/. Checked:
- llama.cpp on our f16 and transformers on the HF directory agree: max abs logit difference below 1% of
  the largest |logit| (measured 0.24 on logits reaching 98, 0.25%), the same top-1 at every position;
- our f16 gives exactly the logits of llama.cpp's own f16 copy of the same weights (conftest's f16_path);
- with the six ASPD tokens mapped onto <unused0>..<unused5>: metadata written, tokens renamed and
  CONTROL, the engine serves the file as an ASPD model without being given a mapping.
"""

from __future__ import annotations

import numpy as np
import pytest

from test_convert_fixtures import LONG_TEXT, hf_logits, llama_logits

from aspd_local import Engine
from aspd_local.llama import Model
from aspd_local.models import cache_dir
from convert import convert_checkpoint, hf_dir_from_gguf

UNUSED = "<unused0>,<unused1>,<unused2>,<unused3>,<unused4>,<unused5>"
NAMES = ["<|title|>", "<|/title|>", "<|para|>", "<|/para|>", "<|branch|>", "<|/branch|>"]
TEXTS = [
    "The capital of France is Paris. 1234 numbers and naïve café!",
    "<start_of_turn>user\nList three fruits.<end_of_turn>\n<start_of_turn>model\n",
    "def add(a, b):\n    return a + b\n\n# Tests\nassert add(2, 3) == 5",
]


@pytest.fixture(scope="module")
def gemma_hf_dir(q4_path):
    path = cache_dir() / "test" / "gemma-3-270m-hf"
    if not path.exists():
        hf_dir_from_gguf(q4_path, path, progress=False)
    return path


@pytest.fixture(scope="module")
def gemma_f16(gemma_hf_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gemma") / "gemma-3-270m-aspd-f16.gguf"
    convert_checkpoint(gemma_hf_dir, out, "f16", aspd_tokens=UNUSED, progress=False)
    return out


@pytest.fixture(scope="module")
def seqs(gemma_hf_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gemma_hf_dir)
    return [tok(t)["input_ids"] for t in TEXTS]


def test_hf_dir_is_a_float_model(gemma_hf_dir):
    import json

    cfg = json.loads((gemma_hf_dir / "config.json").read_text())
    assert cfg["model_type"] == "gemma3_text" and "quantization_config" not in cfg
    assert (gemma_hf_dir / "model.safetensors").is_file() and (gemma_hf_dir / "tokenizer.json").is_file()
    assert not list(gemma_hf_dir.parent.glob(f".{gemma_hf_dir.name}.*"))  # no temporary directory left


def test_logits_match_transformers(gemma_hf_dir, gemma_f16, seqs):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gemma_hf_dir, dtype=torch.float32)
    model.eval()
    ref = hf_logits(model, seqs)
    got = llama_logits(gemma_f16, seqs)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(got, ref))
    print(f"\n[convert] gemma-3-270m f16 vs transformers: max abs logit diff {diff:.4f} over "
          f"{sum(map(len, seqs))} positions (logits span +-{max(float(np.abs(b).max()) for b in ref):.0f})")
    for a, b in zip(got, ref):
        assert float(np.abs(a - b).max()) < 0.01 * float(np.abs(b).max())
        assert (a.argmax(-1) == b.argmax(-1)).all()


def test_same_logits_as_llama_cpp_own_f16(gemma_f16, f16_path, seqs):
    ours, theirs = llama_logits(gemma_f16, seqs), llama_logits(f16_path, seqs)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_tokenization_matches_transformers(gemma_hf_dir, gemma_f16):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gemma_hf_dir)
    model = Model(str(gemma_f16))
    try:
        for text in TEXTS + [LONG_TEXT, "Hello world!  Two  spaces,\ttab\n\nnewlines 1234567 日本語 🙂 Ωmega <eos> x"]:
            assert model.tokenize(text, add_special=True, parse_special=True) == tok(text)["input_ids"], text
    finally:
        model.close()


def test_aspd_tokens_renamed_and_served(gemma_f16):
    engine = Engine(str(gemma_f16), n_ctx=512, speculate="none", suffix_cache=False)
    try:
        model = engine.model
        roles = ["title_open", "title_close", "para_open", "para_close", "branch_open", "branch_close"]
        assert [model.meta(f"aspd.token.{r}") for r in roles] == ["6", "7", "8", "9", "10", "11"]
        assert model.meta("aspd.version") == "1" and model.meta("aspd.position_mode") == "max_para"
        assert [model.token_text(i) for i in range(6, 12)] == NAMES  # <unused0>..<unused5>, renamed
        control = set(model.control_ids.tolist())
        assert set(range(6, 12)) <= control and {0, 1, 2, 105, 106} <= control  # pad eos bos, turn markers
        assert model.n_vocab == 262144 and model.token_text(12) == "<unused6>"
        assert model.find_token("<unused0>") is None
        assert engine.has_aspd and list(engine.aspd.ids) == [6, 7, 8, 9, 10, 11]
        assert engine.aspd.separator == ": "
        assert model.tokenize("<|title|>A<|/title|>", parse_special=True)[0] == 6
        assert 6 not in engine.tokenize("<|title|>")  # CONTROL: never produced from plain text
    finally:
        engine.close()
