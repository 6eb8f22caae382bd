"""The tokenizer of a Hugging Face directory, in the form llama.cpp reads from GGUF.

Two vocabulary kinds, the ones llama, qwen2 and gemma3 checkpoints use:

- SentencePiece-style (llama.cpp tokenizer model ``llama``): a BPE over text with spaces written
  as ``▁`` and byte fallback. Read from ``tokenizer.json`` (BPE with ``byte_fallback``; the score of a
  token is minus the rank of the merge that makes it, which is the order llama.cpp merges in) or,
  without one, from ``tokenizer.model`` (its own scores).
- Byte-level BPE (llama.cpp tokenizer model ``gpt2``): tokens and merges from ``tokenizer.json``,
  plus the tag of the pre-tokenizer regex, which llama.cpp knows by name.

Added tokens marked special become CONTROL (never produced from plain text), other added tokens
USER_DEFINED. Special ids, BOS/EOS flags and the chat template come from tokenizer_config.json,
tokenizer.json's post-processor and config.json.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from gguf import TokenType

from .errors import ConvertError
from .spm_model import MODEL_BPE, read_spm_model

SPM, BPE = "llama", "gpt2"
_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")

# Pre-tokenizer regexes of byte-level BPE tokenizers, by the name llama.cpp knows them under.
_LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_TOKENIZERS = {_LLAMA3_REGEX: "llama-bpe", _QWEN2_REGEX: "qwen2"}


@dataclass
class Vocab:
    """Everything the ``tokenizer.*`` GGUF keys hold."""

    model: str  # SPM or BPE
    tokens: list[str]
    scores: list[float]
    types: list[int]
    merges: list[str] = field(default_factory=list)
    pre: str | None = None  # pre-tokenizer tag (BPE only)
    bos_id: int | None = None
    eos_id: int | None = None
    unk_id: int | None = None
    pad_id: int | None = None
    add_bos: bool = False
    add_eos: bool = False
    add_space_prefix: bool = False  # SPM only
    chat_template: str | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    def pad_to(self, n: int) -> None:
        """Extend with unused placeholder tokens up to ``n`` entries (embedding rows beyond the tokenizer)."""
        for i in range(len(self.tokens), n):
            self.tokens.append(f"[PAD{i}]")
            self.scores.append(0.0)
            self.types.append(int(TokenType.UNUSED))

    def rename(self, token_id: int, text: str) -> None:
        """Respell a token and make it a CONTROL token."""
        self.tokens[token_id] = text
        self.types[token_id] = int(TokenType.CONTROL)


def read_vocab(src: Path, config: dict) -> Vocab:
    """Read the tokenizer of the Hugging Face directory ``src``."""
    src = Path(src)
    tok_config = _read_json(src / "tokenizer_config.json") or {}
    tj_path, spm_path = src / "tokenizer.json", src / "tokenizer.model"
    if tj_path.is_file():
        tj = _read_json(tj_path)
        vocab = _from_tokenizer_json(tj, tj_path)
    elif spm_path.is_file():
        tj = None
        vocab = _from_spm(spm_path, src, tok_config)
    else:
        raise ConvertError(f"no tokenizer in {src}: expected tokenizer.json or tokenizer.model")
    _special_ids(vocab, tok_config, config)
    _bos_eos_flags(vocab, tok_config, tj)
    vocab.chat_template = _chat_template(src, tok_config)
    return vocab


# -- tokenizer.json -------------------------------------------------------------------------------

def _from_tokenizer_json(tj: dict, path: Path) -> Vocab:
    model = tj.get("model") or {}
    mtype = model.get("type")
    if mtype != "BPE":
        raise ConvertError(f"{path}: a {mtype} tokenizer model is not supported (llama, qwen2 and gemma3 "
                           "checkpoints use BPE)")
    kind = _bpe_kind(tj, path)
    table: dict[int, str] = {int(i): t for t, i in model["vocab"].items()}
    added = {int(a["id"]): a for a in tj.get("added_tokens") or []}
    for i, a in added.items():
        table[i] = a["content"]
    n = max(table) + 1
    tokens = [table.get(i, f"[PAD{i}]") for i in range(n)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    unk = model.get("unk_token")
    types, scores = [], []
    rank = _merge_rank(merges) if kind == SPM else {}
    for i, tok in enumerate(tokens):
        if i not in table:
            types.append(int(TokenType.UNUSED))
        elif i in added and tok != unk:
            types.append(int(TokenType.CONTROL if added[i].get("special") else TokenType.USER_DEFINED))
        elif tok == unk and unk is not None:
            types.append(int(TokenType.UNKNOWN))
        elif kind == SPM and _BYTE_TOKEN.match(tok):
            types.append(int(TokenType.BYTE))
        else:
            types.append(int(TokenType.NORMAL))
        scores.append(-float(rank[tok]) if tok in rank else 0.0)
    vocab = Vocab(model=kind, tokens=tokens, scores=scores, types=types)
    if kind == BPE:
        vocab.merges = merges
        vocab.pre = _pre_tag(tj, path)
    else:
        vocab.add_space_prefix = _spm_prepends_space(tj)
    return vocab


def _walk(node) -> list[dict]:
    """A normalizer / pre-tokenizer / decoder and the members of its Sequence, flattened."""
    if not node:
        return []
    kids = node.get("normalizers") or node.get("pretokenizers") or node.get("decoders")
    if kids is not None:
        return [n for k in kids for n in _walk(k)]
    return [node]


def _bpe_kind(tj: dict, path: Path) -> str:
    parts = _walk(tj.get("pre_tokenizer")) + _walk(tj.get("decoder"))
    if any(p.get("type") == "ByteLevel" for p in parts):
        return BPE
    model = tj["model"]
    if model.get("byte_fallback") or any(p.get("type") == "Metaspace" for p in parts) or _replaces_space(tj):
        return SPM
    raise ConvertError(f"{path}: a BPE tokenizer that is neither byte-level nor SentencePiece-style "
                       "(no ByteLevel, Metaspace or byte fallback) is not supported")


def _replaces_space(tj: dict) -> bool:
    for n in _walk(tj.get("normalizer")):
        if n.get("type") == "Replace" and (n.get("pattern") or {}).get("String") == " " and n.get("content") == "▁":
            return True
    return False


def _spm_prepends_space(tj: dict) -> bool:
    for n in _walk(tj.get("normalizer")):
        if n.get("type") == "Prepend" and n.get("prepend") == "▁":
            return True
    for p in _walk(tj.get("pre_tokenizer")):
        if p.get("type") == "Metaspace":
            scheme = p.get("prepend_scheme")
            if scheme is None:
                return bool(p.get("add_prefix_space", True))
            return scheme in ("always", "first")
    return False


def _merge_rank(merges: list[str]) -> dict[str, int]:
    rank: dict[str, int] = {}
    for r, m in enumerate(merges):
        left, _, right = m.partition(" ")
        rank.setdefault(left + right, r)
    return rank


def _pre_tag(tj: dict, path: Path) -> str:
    parts = _walk(tj.get("pre_tokenizer"))
    regexes = [(p.get("pattern") or {}).get("Regex") for p in parts if p.get("type") == "Split"]
    regexes = [r for r in regexes if r]
    byte_level = [p for p in parts if p.get("type") == "ByteLevel"]
    if not regexes and byte_level and byte_level[0].get("use_regex", True):
        return "gpt-2"
    if len(regexes) == 1 and regexes[0] in PRE_TOKENIZERS:
        return PRE_TOKENIZERS[regexes[0]]
    raise ConvertError(f"{path}: unknown pre-tokenizer {regexes or parts!r:.200}; llama.cpp splits text only "
                       f"with regexes it knows (supported here: gpt-2, {', '.join(PRE_TOKENIZERS.values())})")


# -- tokenizer.model ------------------------------------------------------------------------------

def _from_spm(path: Path, src: Path, tok_config: dict) -> Vocab:
    spm = read_spm_model(path)
    if spm.model_type != MODEL_BPE:
        raise ConvertError(f"{path}: a Unigram SentencePiece model is not supported (llama.cpp's "
                           "SentencePiece tokenizer merges BPE pieces)")
    if spm.remove_extra_whitespaces or (spm.has_charsmap and spm.normalizer != "identity"):
        raise ConvertError(f"{path}: the SentencePiece model normalizes text (rule {spm.normalizer!r}, "
                           f"remove_extra_whitespaces={spm.remove_extra_whitespaces}), which llama.cpp does not "
                           "reproduce; Llama-style models use the identity rule")
    tokens, scores, types = list(spm.pieces), list(spm.scores), list(spm.types)
    extra: dict[int, tuple[str, bool]] = {}
    for text, i in (_read_json(src / "added_tokens.json") or {}).items():
        extra[int(i)] = (text, True)
    for i, a in (tok_config.get("added_tokens_decoder") or {}).items():
        extra[int(i)] = (a["content"], bool(a.get("special", True)))
    for i, (text, special) in sorted(extra.items()):
        if i < len(spm.pieces):  # a piece of the model itself keeps its own type
            continue
        while len(tokens) <= i:
            tokens.append(f"[PAD{len(tokens)}]")
            scores.append(0.0)
            types.append(int(TokenType.UNUSED))
        tokens[i] = text
        types[i] = int(TokenType.CONTROL if special else TokenType.USER_DEFINED)
    return Vocab(model=SPM, tokens=tokens, scores=scores, types=types, add_space_prefix=spm.add_dummy_prefix)


# -- special tokens, flags, template ---------------------------------------------------------------

def _token_text(value) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _special_ids(vocab: Vocab, tok_config: dict, config: dict) -> None:
    index: dict[str, int] = {}
    for i, t in enumerate(vocab.tokens):
        index.setdefault(t, i)
    for role in ("bos", "eos", "unk", "pad"):
        tid = None
        text = _token_text(tok_config.get(f"{role}_token"))
        if text is not None:
            tid = index.get(text)
        if tid is None:
            cid = config.get(f"{role}_token_id")
            if isinstance(cid, list):
                cid = cid[0] if cid else None
            if isinstance(cid, int) and 0 <= cid < len(vocab.tokens):
                tid = cid
        setattr(vocab, f"{role}_id", tid)
    if vocab.unk_id is None and TokenType.UNKNOWN in vocab.types:
        vocab.unk_id = vocab.types.index(int(TokenType.UNKNOWN))


def _bos_eos_flags(vocab: Vocab, tok_config: dict, tj: dict | None) -> None:
    add_bos = add_eos = False
    post = (tj or {}).get("post_processor") or {}
    for p in [post] + list(post.get("processors") or []):
        if p.get("type") == "TemplateProcessing":
            single = [s.get("SpecialToken", {}).get("id") if "SpecialToken" in s else None for s in p.get("single", [])]
            bos = vocab.tokens[vocab.bos_id] if vocab.bos_id is not None else None
            eos = vocab.tokens[vocab.eos_id] if vocab.eos_id is not None else None
            add_bos = bool(single) and single[0] is not None and single[0] == bos
            add_eos = bool(single) and single[-1] is not None and single[-1] == eos
    if tj is None:  # a bare SentencePiece model: llama's convention
        add_bos = True
    if isinstance(tok_config.get("add_bos_token"), bool):
        add_bos = tok_config["add_bos_token"]
    if isinstance(tok_config.get("add_eos_token"), bool):
        add_eos = tok_config["add_eos_token"]
    vocab.add_bos = add_bos and vocab.bos_id is not None
    vocab.add_eos = add_eos and vocab.eos_id is not None


def _chat_template(src: Path, tok_config: dict) -> str | None:
    jinja = src / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    tmpl = tok_config.get("chat_template")
    if tmpl is None:
        tmpl = (_read_json(src / "chat_template.json") or {}).get("chat_template")
    if isinstance(tmpl, list):  # named templates: keep the default one
        named = {t.get("name"): t.get("template") for t in tmpl if isinstance(t, dict)}
        tmpl = named.get("default") or next(iter(named.values()), None)
    return tmpl if isinstance(tmpl, str) else None


def _read_json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConvertError(f"cannot read {path}: {e}") from None
