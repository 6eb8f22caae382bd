"""Bad inputs: one clear message each, and nothing left in the output directory (no GGUF, no temp file).
Also the command line, as a user runs it, and sharded checkpoints."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from test_convert_fixtures import ASPD_NAMES, make_model, make_tokenizer

from convert import ConvertError, convert_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("errors") / "hf"
    tok = make_tokenizer("llama-spm", d)
    make_model("llama", len(tok), d, tokenizer=tok)
    return d


@pytest.fixture
def work(tiny_dir, tmp_path):
    """A private copy of the tiny checkpoint and an empty output directory."""
    src = tmp_path / "hf"
    shutil.copytree(tiny_dir, src)
    out = tmp_path / "out"
    out.mkdir()
    return src, out


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _refused(src, out, match, **kw):
    kw.setdefault("progress", False)
    with pytest.raises(ConvertError, match=match):
        convert_checkpoint(src, out / "model.gguf", kw.pop("outtype", "f16"), **kw)
    assert list(out.iterdir()) == []


def test_unsupported_architecture(work):
    src, out = work
    _edit_json(src / "config.json", model_type="gpt2")
    _refused(src, out, r"^unsupported architecture 'gpt2'; supported: llama, mistral, qwen2, gemma3_text$")


def test_unsupported_setting(work):
    src, out = work
    _edit_json(src / "config.json", hidden_act="gelu")
    _refused(src, out, r"^llama: activation 'gelu' cannot be represented in a llama.cpp llama GGUF$")


def test_missing_config(work):
    src, out = work
    (src / "config.json").unlink()
    _refused(src, out, r"^no config.json in .*: not a Hugging Face model directory$")


def test_missing_weights(work):
    src, out = work
    (src / "model.safetensors").unlink()
    _refused(src, out, r"^no weights in .*: expected \*.safetensors or pytorch_model\*.bin$")


def test_missing_tokenizer(work):
    src, out = work
    (src / "tokenizer.json").unlink()
    _refused(src, out, r"^no tokenizer in .*: expected tokenizer.json or tokenizer.model$")


def test_missing_shard(work):
    src, out = work
    (src / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00002-of-00002.safetensors"}}))
    _refused(src, out, r"names shards that are missing: model-00002-of-00002.safetensors$")


def test_more_tokens_than_embedding_rows(work):
    src, out = work
    tj = json.loads((src / "tokenizer.json").read_text())
    n = max(a["id"] for a in tj["added_tokens"]) + 1
    tj["added_tokens"] += [{"id": n + i, "content": f"<extra{i}>", "single_word": False, "lstrip": False,
                            "rstrip": False, "normalized": False, "special": True} for i in range(2)]
    (src / "tokenizer.json").write_text(json.dumps(tj))
    _refused(src, out, rf"^the tokenizer has {n + 2} tokens but the embedding matrix has {n} rows")


def test_aspd_token_not_in_vocabulary(work):
    src, out = work
    _refused(src, out, r"^ASPD token '<nope>' \(title_open\) is not in the vocabulary$",
             aspd_tokens="<nope>,<s>,</s>,<unk>,a,b")


def test_aspd_mapping_needs_six(work):
    src, out = work
    _refused(src, out, r"^--aspd-tokens needs 6 tokens .*got 2$", aspd_tokens="<s>,</s>")


def test_some_aspd_tokens_missing(work):
    src, out = work
    tj = json.loads((src / "tokenizer.json").read_text())
    tj["added_tokens"] = [a for a in tj["added_tokens"] if a["content"] not in ASPD_NAMES[2:]]
    (src / "tokenizer.json").write_text(json.dumps(tj))
    _refused(src, out, r"^the tokenizer has some ASPD tokens but not <\|para\|>, <\|/para\|>, <\|branch\|>, "
                       r"<\|/branch\|>; add all six or map them")


def test_position_mode_that_cannot_be_served(work):
    src, out = work
    _refused(src, out, r"^position mode 'normal' cannot be served by the llama.cpp engine .*supported: max_para$",
             position_mode="normal")


def test_unknown_outtype(work):
    src, out = work
    _refused(src, out, r"^unknown output type 'q3_x'; choose from f32, f16, bf16, q8_0, ", outtype="q3_x")


def test_normalizing_sentencepiece_model(work):
    import sentencepiece as spm

    src, out = work
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (src / f).unlink()
    buf_path = src / "tokenizer.model"
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(["some text to train on"] * 20), model_writer=buf,
                                   vocab_size=40, model_type="bpe", minloglevel=2, hard_vocab_limit=False)
    buf_path.write_bytes(buf.getvalue())  # default rule nmt_nfkc, extra whitespace removed
    _refused(src, out, r"the SentencePiece model normalizes text \(rule 'nmt_nfkc', remove_extra_whitespaces=True\)")


def test_failure_while_writing_leaves_nothing(work, monkeypatch):
    """An error in the middle of the tensors (here an injected I/O error) removes the partial file."""
    from convert.source import Checkpoint

    src, out = work
    real_load, calls = Checkpoint.load, []

    def failing_load(self, name):
        calls.append(name)
        if len(calls) == 5:
            raise OSError("disk read error")
        return real_load(self, name)

    monkeypatch.setattr(Checkpoint, "load", failing_load)
    with pytest.raises(OSError, match="disk read error"):
        convert_checkpoint(src, out / "model.gguf", "f16", progress=False)
    assert len(calls) == 5 and list(out.iterdir()) == []


def test_kquant_through_llama_cpp(work):
    """k-quants come from llama.cpp's quantizer on an intermediate f16 file, which is removed."""
    from aspd_local.llama import Model

    src, out = work
    # k-quant blocks are 256 wide: a wider tiny model, so that its matrices can use them
    shutil.rmtree(src)
    tok = make_tokenizer("llama-spm", src)
    make_model("llama", len(tok), src, tokenizer=tok, hidden_size=256, intermediate_size=512)
    path = convert_checkpoint(src, out / "model.gguf", "q4_k_m", progress=False)
    assert [p.name for p in out.iterdir()] == ["model.gguf"]
    model = Model(str(path))
    try:
        assert model.meta("general.file_type") == "15"  # MOSTLY_Q4_K_M
        assert model.tokenize("Hello", add_special=True)[0] == tok.bos_token_id
    finally:
        model.close()


def test_sharded_checkpoint(work, tmp_path):
    """Shards with an index and bf16 weights give exactly the tensors of the single-file f32 checkpoint
    converted to bf16."""
    import gguf
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    src, out = work
    sharded = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).save_pretrained(sharded, max_shard_size="100KB")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / f, sharded / f)
    assert (sharded / "model.safetensors.index.json").is_file() and len(list(sharded.glob("*.safetensors"))) > 2
    a = gguf.GGUFReader(str(convert_checkpoint(sharded, out / "sharded.gguf", "f32", progress=False)))
    b = gguf.GGUFReader(str(convert_checkpoint(src, out / "single.gguf", "bf16", progress=False)))
    tb = {t.name: t for t in b.tensors}
    assert sorted(t.name for t in a.tensors) == sorted(tb)
    for t in a.tensors:
        other = tb[t.name]
        want = gguf.quants.dequantize(other.data, other.tensor_type).reshape(t.data.shape)
        got = np.asarray(t.data)
        if other.tensor_type == gguf.GGMLQuantizationType.F32:  # 1-D norms: f32 on one side, bf16 on the other
            want = torch.tensor(want).to(torch.bfloat16).float().numpy()
        np.testing.assert_array_equal(got, want, err_msg=t.name)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "aspd_local", "convert", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_cli_converts(work):
    from aspd_local.llama import Model

    src, out = work
    p = _cli(str(src), str(out / "m.gguf"), "--outtype", "q8_0", "--title-separator", " - ", "--quiet")
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == f"[convert] wrote {out / 'm.gguf'}"
    model = Model(str(out / "m.gguf"))
    try:
        assert model.meta("general.file_type") == "7"  # MOSTLY_Q8_0
        assert model.meta("aspd.title_separator") == " - "
    finally:
        model.close()


def test_cli_error_is_one_line(work):
    src, out = work
    p = _cli(str(src), str(out / "m.gguf"), "--position-mode", "normal")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: position mode 'normal' cannot be served by the llama.cpp engine (the positions of a sequence "
        "must stay consecutive); supported: max_para"]
    assert list(out.iterdir()) == []
