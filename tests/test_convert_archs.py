"""Per architecture: a tiny random transformers model with a tiny tokenizer, converted to f32, f16 and
q8_0, against transformers: next-token logits at every position of several sequences, and the
tokenization of a mixed text.

Tolerances (logits of these models span about +-5):
- f32: max |llama.cpp - transformers| < 0.05 (measured 0.008-0.013; llama.cpp keeps its KV cache in f16);
- f16: max abs < 0.1 (measured 0.010-0.020);
- q8_0: max abs < 1.0 (measured 0.23-0.48; llama.cpp also quantizes the activations to 8 bits);
- top-1: the same wherever transformers' best logit leads the second by more than the tolerance of the
  type (f32 0.05, f16 0.1, q8_0 1.0), and on >= 95% (f32, f16) / >= 85% (q8_0) of all positions; random
  tiny models have many near-ties, which is why a bare "same top-1 everywhere" would be noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from test_convert_fixtures import (ASPD_NAMES, CORPUS, LONG_TEXT, MIXED_TEXT, UNUSED, gguf_fields, gguf_tokens, hf_logits,
                                   llama_logits, make_model, make_tokenizer, train_sentencepiece)

from aspd_local import Engine
from aspd_local.llama import Model
from convert import convert_checkpoint

TEXTS = [
    "The quick brown fox jumps over the lazy dog and runs far away from the hunters in the forest.",
    "Paris is the capital of France. 12345 + 678 = 13023; café naïve.",
    "def f(x):\n    return x * 2  # a line of code\n- first item\n- second item",
]
TOLERANCE = {"f32": (0.05, 0.95), "f16": (0.1, 0.95), "q8_0": (1.0, 0.85)}

# (architecture, tokenizer kind, config overrides)
CASES = {
    "llama": ("llama", "llama-spm", {}),
    "qwen2": ("qwen2", "qwen2-bpe", {}),
    "gemma3": ("gemma3", "gemma-spm", {}),
    "llama-llama3-bpe": ("llama", "llama3-bpe", {}),
    "mistral": ("mistral", "llama-spm", {}),
    # Llama 3.1 rope scaling with a short original context, so the scaled frequencies matter at these lengths
    "llama-rope-llama3": ("llama", "llama-spm", {"rope_parameters": {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16, "rope_theta": 10000.0}}),
}
EXTRA_ROWS = {"qwen2": 13}  # embedding rows beyond the tokenizer (Qwen pads its embedding matrix)


def special_text(kind: str) -> str:
    """MIXED_TEXT with the tokenizer's special tokens inside words and between sentences."""
    s = UNUSED if kind == "gemma-spm" else ASPD_NAMES
    return f"{s[0]}Title{s[1]}{s[2]}{s[4]}Branch: {MIXED_TEXT}{s[5]}{s[3]}end {s[0]}x"


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    name = request.param
    arch, kind, overrides = CASES[name]
    d = tmp_path_factory.mktemp(name)
    tok = make_tokenizer(kind, d / "hf")
    rows = len(tok) + EXTRA_ROWS.get(arch, 0)
    model = make_model(arch, rows, d / "hf", tokenizer=tok, **overrides)
    seqs = [tok(t)["input_ids"][:48] for t in TEXTS]
    return {"name": name, "arch": arch, "kind": kind, "dir": d, "tok": tok, "rows": rows, "seqs": seqs,
            "ref": hf_logits(model, seqs), "gguf": {}}


def converted(case, outtype: str):
    if outtype not in case["gguf"]:
        out = case["dir"] / f"model-{outtype}.gguf"
        convert_checkpoint(case["dir"] / "hf", out, outtype, progress=False)
        case["gguf"][outtype] = out
    return case["gguf"][outtype]


@pytest.mark.parametrize("outtype", ["f32", "f16", "q8_0"])
def test_logits_match_transformers(case, outtype):
    tol, min_same = TOLERANCE[outtype]
    got = llama_logits(converted(case, outtype), case["seqs"])
    ref = case["ref"]
    diff = max(float(np.abs(a - b).max()) for a, b in zip(got, ref))
    assert diff < tol, f"{case['name']} {outtype}: max abs logit difference {diff:.4f}"
    same = []
    for a, b in zip(got, ref):
        top2 = np.sort(b, axis=-1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > tol
        agree = a.argmax(-1) == b.argmax(-1)
        assert agree[clear].all(), f"{case['name']} {outtype}: top-1 differs where transformers leads by > {tol}"
        same.append(agree)
    frac = float(np.concatenate(same).mean())
    print(f"\n[convert] {case['name']:18s} {outtype:5s} max abs logit diff {diff:.4f}  same top-1 {frac:.1%}")
    assert frac >= min_same, f"{case['name']} {outtype}: same top-1 on {frac:.0%} of positions"


def test_tokenization_matches_transformers(case):
    model = Model(str(converted(case, "f32")))
    try:
        for text in [special_text(case["kind"]), MIXED_TEXT, LONG_TEXT, *CORPUS[:7]]:
            want = case["tok"](text)["input_ids"]
            got = model.tokenize(text, add_special=True, parse_special=True)
            assert got == want, (text, case["tok"].convert_ids_to_tokens(want), [model.token_text(i) for i in got])
    finally:
        model.close()


def test_metadata(case):
    path = converted(case, "f16")
    meta = gguf_fields(path)
    arch = {"mistral": "llama"}.get(case["arch"], case["arch"])
    assert meta["general.architecture"] == arch
    tokens, types = gguf_tokens(path)
    assert len(tokens) == case["rows"]  # padded to the embedding rows
    assert all(t == 5 for t in types[len(case["tok"]):])  # padding entries are UNUSED
    spm = case["kind"].endswith("spm")
    assert meta["tokenizer.ggml.model"] == ("llama" if spm else "gpt2")
    if not spm:
        assert meta["tokenizer.ggml.pre"] == {"qwen2-bpe": "qwen2", "llama3-bpe": "llama-bpe"}[case["kind"]]
    if case["kind"] == "gemma-spm":
        assert meta["gemma3.attention.sliding_window"] == 8 and meta["tokenizer.ggml.add_space_prefix"] is False
        assert "aspd.version" not in meta  # no ASPD tokens by name and no mapping: an ordinary model
    else:
        # the six ASPD tokens were added to the tokenizer by name: found, CONTROL, in the metadata
        ids = [case["tok"].convert_tokens_to_ids(n) for n in ASPD_NAMES]
        roles = ["title_open", "title_close", "para_open", "para_close", "branch_open", "branch_close"]
        assert [meta[f"aspd.token.{r}"] for r in roles] == ids
        assert meta["aspd.version"] == 1 and meta["aspd.position_mode"] == "max_para"
        assert meta["aspd.title_separator"] == ": "
        assert all(types[i] == 3 for i in ids)
    tok = case["tok"]
    for tid in tok.all_special_ids:  # added special tokens are CONTROL (never produced from plain text)
        assert types[tid] == (2 if tid == tok.unk_token_id else 3), (tid, tokens[tid])
    tied = case["arch"] in ("qwen2", "gemma3")  # their configs tie lm_head to the embeddings
    import gguf

    names = {t.name for t in gguf.GGUFReader(str(path)).tensors}
    assert ("output.weight" in names) != tied
    assert ("rope_freqs.weight" in names) == (case["name"] == "llama-rope-llama3")
    if case["kind"] == "qwen2-bpe":
        assert "im_start" in meta["tokenizer.chat_template"]


def test_engine_reads_aspd_metadata(case):
    engine = Engine(str(converted(case, "f16")), n_ctx=256, speculate="none", suffix_cache=False)
    try:
        if case["kind"] == "gemma-spm":  # no ASPD tokens by name and no mapping: served serially
            assert not engine.has_aspd and "served serially" in engine.notice
        else:
            assert engine.has_aspd
            assert list(engine.aspd.ids) == [case["tok"].convert_tokens_to_ids(n) for n in ASPD_NAMES]
    finally:
        engine.close()


def test_sentencepiece_model_file(tmp_path):
    """A directory with only tokenizer.model (no tokenizer.json): its pieces, scores and types are used;
    llama.cpp's tokenization equals sentencepiece's own."""
    import sentencepiece as spm

    d = tmp_path / "hf"
    d.mkdir()
    train_sentencepiece(d / "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=str(d / "tokenizer.model"))
    make_model("llama", sp.get_piece_size(), d, bos_token_id=sp.bos_id(), eos_token_id=sp.eos_id())
    out = tmp_path / "m.gguf"
    convert_checkpoint(d, out, "f16", progress=False)
    meta = gguf_fields(out)
    assert meta["tokenizer.ggml.model"] == "llama" and meta["tokenizer.ggml.add_space_prefix"] is True
    assert meta["aspd.token.title_open"] == sp.piece_to_id("<|title|>")  # control symbols found by name
    model = Model(str(out))
    try:
        for text in [MIXED_TEXT, *CORPUS[:7]]:
            assert model.tokenize(text, add_special=True) == [sp.bos_id()] + sp.encode(text), text
    finally:
        model.close()
