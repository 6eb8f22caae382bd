"""Builders shared by the converter tests: tiny random models (transformers) with tiny tokenizers of
each kind (tokenizers / sentencepiece, trained here on a few lines), and logits from both sides.

No test lives here; the test_convert_*.py modules import from it.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! Numbers like 12345, 678 and 90 are common.",
    "def f(x):\n    return x * 2  # a line of code",
    "A list:\n- first item\n- second item\n\nThe end.",
    "Ünïcödé text: café, naïve, façade, jalapeño.",
    "Spaces   between    words and\ttabs.",
    "Paris is the capital of France. Berlin is the capital of Germany.",
] * 4

ASPD_NAMES = ["<|title|>", "<|/title|>", "<|para|>", "<|/para|>", "<|branch|>", "<|/branch|>"]
UNUSED = [f"<unused{i}>" for i in range(6)]

# A text mixing everything a tokenizer can get wrong: special tokens inside words, unicode outside the
# training alphabet (byte fallback), runs of spaces, tabs, newlines, digits.
MIXED_TEXT = ("Hello world!  Two  spaces,\ttab and\nnewline. Digits 1234567 and 3.14; "
              "unicode: café naïve 日本語 🙂 Ωmega.")

# Running prose with rare words and code: a vocabulary with wrong merge priorities (scores) splits some
# of these words differently from transformers (Gemma 3 with all scores equal: a mismatch here).
LONG_TEXT = """Adaptive serial-parallel decoding lets a fine-tuned model announce independent parts of an answer
with short titles; the engine then decodes every branch at once, sharing one key-value cache, before it
switches back to ordinary serial decoding. Speculative decoding, by contrast, guesses several tokens from a
suffix tree built over earlier outputs and verifies them in a single batched forward pass.

Quantization trades precision for memory bandwidth: Q4_K_M stores most matrices with four-bit blocks and a
few sensitive ones with six bits, whereas f16 keeps half-precision floats. Reproducibility requires pinned
dependencies (torch==2.13.0, transformers==5.23.0) and deterministic kernels.

Unusual vocabulary: photosynthesis, chlorophyll, antidisestablishmentarianism, onomatopoeia, sesquipedalian,
Schrödinger's equation, Nietzschean, Tchaikovsky, Reykjavík, Wrocław, São Paulo, Zürich, Kraków, Ljubljana.

def tokenize(text: str) -> list[int]:
    ids = [bos] + [vocab.get(piece, unk) for piece in text.split()]
    return ids  # O(n) in the number of pieces

Measured throughput: 14 ms for one token, 35 ms for 4, 55 ms for 8 and 94 ms for 16 (1.6x, 2.0x, 2.4x)."""


QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


# -- tokenizers ------------------------------------------------------------------------------------

def _spm_style(specials: list[str], normalizer, pre_tokenizer, vocab_size: int = 320):
    """A SentencePiece-style BPE (``▁`` for spaces, byte fallback): trained on CORPUS, then laid out as
    Llama/Gemma lay theirs out: special tokens, the 256 byte tokens, then the learned pieces."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.normalizer = normalizer
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer_tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False))
    learned = json.loads(trainer_tok.to_str())["model"]
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(t, len(vocab))
    merges = [tuple(m) if not isinstance(m, str) else tuple(m.split(" ")) for m in learned["merges"]]
    unk = "<unk>" if "<unk>" in vocab else None
    tok = Tokenizer(models.BPE(vocab, merges, byte_fallback=True, unk_token=unk, fuse_unk=True))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    return tok


def _byte_level(regex: str, specials: list[str], nfc: bool, vocab_size: int = 400):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def _with_bos(tok, bos: str) -> None:
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, tok.token_to_id(bos))])


def make_tokenizer(kind: str, out_dir: Path):
    """Save a tiny HF tokenizer of ``kind`` to ``out_dir`` and return it (loaded back by AutoTokenizer).

    kinds: ``llama-spm`` (Llama 2 style, ASPD tokens added), ``gemma-spm`` (Gemma style with
    <unused0..5> control tokens), ``qwen2-bpe`` (byte-level, Qwen2 regex, ASPD tokens added, chat
    template), ``llama3-bpe`` (byte-level, Llama 3 regex).
    """
    from tokenizers import decoders, normalizers, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    extra: dict = {}
    if kind == "llama-spm":
        tok = _spm_style(["<unk>", "<s>", "</s>"], None,
                         pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False))
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
        _with_bos(tok, "<s>")
        names = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")
        added = ASPD_NAMES
    elif kind == "gemma-spm":
        specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + UNUSED
        tok = _spm_style(specials, normalizers.Replace(" ", "▁"),
                         pre_tokenizers.Split(" ", behavior="merged_with_previous"))
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
        _with_bos(tok, "<bos>")
        names = dict(bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>")
        added = UNUSED
    elif kind == "qwen2-bpe":
        tok = _byte_level(QWEN2_REGEX, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], nfc=True)
        names = dict(eos_token="<|im_end|>", pad_token="<|endoftext|>")
        added = ASPD_NAMES
        extra["chat_template"] = CHAT_TEMPLATE
    elif kind == "llama3-bpe":
        tok = _byte_level(LLAMA3_REGEX, ["<|begin_of_text|>", "<|end_of_text|>"], nfc=False)
        _with_bos(tok, "<|begin_of_text|>")
        names = dict(bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>")
        added = ASPD_NAMES
    else:
        raise ValueError(kind)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, **names)
    hf.add_special_tokens({"additional_special_tokens": added})
    for k, v in extra.items():
        setattr(hf, k, v)
    hf.save_pretrained(out_dir)
    return AutoTokenizer.from_pretrained(out_dir)


def train_sentencepiece(out_file: Path, vocab_size: int = 400) -> None:
    """A SentencePiece BPE model trained on CORPUS, normalizing nothing, as Llama 2's tokenizer.model."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=buf, vocab_size=vocab_size,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                   control_symbols=ASPD_NAMES, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                                   hard_vocab_limit=False, minloglevel=2, normalization_rule_name="identity",
                                   remove_extra_whitespaces=False)
    Path(out_file).write_bytes(buf.getvalue())


# -- models ----------------------------------------------------------------------------------------

def _randomize(model, std: float, gemma: bool, seed: int) -> None:
    """Every weight N(0, std); RMS norm weights around 1 (Gemma stores them as w - 1), so a wrong norm
    or a wrong layout shows in the logits."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (0.0 if gemma else 1.0))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def make_model(arch: str, vocab_rows: int, out_dir: Path, *, tokenizer=None, seed: int = 0, **overrides):
    """A tiny random model (hidden 64) of ``arch`` saved to ``out_dir`` (f32 safetensors) and returned."""
    import torch
    from transformers import (AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, MistralConfig,
                              Qwen2Config)

    common = dict(vocab_size=vocab_rows, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512)
    if tokenizer is not None:
        common.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    if arch == "llama":
        cfg = LlamaConfig(num_hidden_layers=2, tie_word_embeddings=False, rms_norm_eps=1e-5, **common)
        gemma = False
    elif arch == "mistral":
        cfg = MistralConfig(num_hidden_layers=2, tie_word_embeddings=False, sliding_window=None, **common)
        gemma = False
    elif arch == "qwen2":
        cfg = Qwen2Config(num_hidden_layers=2, tie_word_embeddings=True, rms_norm_eps=1e-6, **common)
        gemma = False
    elif arch == "gemma3":
        # 6 layers: five sliding-window layers and one global, with a window shorter than the test sequences
        cfg = Gemma3TextConfig(num_hidden_layers=6, head_dim=16, query_pre_attn_scalar=16, sliding_window=8,
                               **common)
        gemma = True
    else:
        raise ValueError(arch)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    _randomize(model, 0.15, gemma, seed)
    model.eval()
    model.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return model


# -- logits ----------------------------------------------------------------------------------------

def hf_logits(model, seqs: list[list[int]]) -> list[np.ndarray]:
    import torch

    out = []
    with torch.no_grad():
        for ids in seqs:
            out.append(model(torch.tensor([ids])).logits[0].float().numpy())
    return out


def llama_logits(path, seqs: list[list[int]]) -> list[np.ndarray]:
    """llama.cpp's logits at every position of each sequence (decoded alone from position 0)."""
    from aspd_local.llama import Context, ContextParams, Model

    model = Model(str(path))
    ctx = Context(model, ContextParams(n_ctx=256, n_batch=256, n_seq_max=1, n_threads=2))
    out = []
    try:
        for ids in seqs:
            ctx.clear()
            ctx.batch.clear()
            for pos, t in enumerate(ids):
                ctx.batch.add(t, pos, 0, True)
            ctx.decode()
            out.append(np.stack([np.array(ctx.logits(i)) for i in range(len(ids))]))
    finally:
        ctx.close()
        model.close()
    return out


def compare(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, float]:
    """(max abs difference, fraction of positions with the same top-1)."""
    diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
    same = np.concatenate([x.argmax(-1) == y.argmax(-1) for x, y in zip(a, b)])
    return diff, float(same.mean())


def gguf_fields(path) -> dict:
    """Scalar and string GGUF metadata (arrays left out) read with gguf's reader."""
    import gguf

    r = gguf.GGUFReader(str(path))
    out = {}
    for k, f in r.fields.items():
        if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
            continue
        out[k] = f.contents()
    return out


def gguf_tokens(path) -> tuple[list[str], list[int]]:
    import gguf

    r = gguf.GGUFReader(str(path))
    return list(r.fields["tokenizer.ggml.tokens"].contents()), list(r.fields["tokenizer.ggml.token_type"].contents())
