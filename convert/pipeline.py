"""HF checkpoint (+ optional LoRA adapter) -> GGUF with the ASPD metadata: the steps in order.

Everything that can be wrong with the inputs is checked before the first byte is written.
"""

from __future__ import annotations

from pathlib import Path

from gguf import GGUFWriter

from . import aspd_meta
from .arch import Architecture, architecture_for
from .errors import ConvertError
from .lora import LoraAdapter
from .progress import note
from .source import Checkpoint
from .vocab import BPE, SPM, Vocab, read_vocab
from .writer import Tensor, check_outtype, write_gguf


def convert_checkpoint(src_dir, out_path, outtype: str = "f16", *, aspd_tokens=None,
                       position_mode: str = "max_para", title_separator: str = ": ", lora_dir=None,
                       progress: bool = True) -> Path:
    """Convert the Hugging Face model in ``src_dir`` to a GGUF at ``out_path``.

    ``aspd_tokens``: None to find the six ASPD tokens by name (a model without them is converted as an
    ordinary model), or six existing token texts/ids (comma-separated string or sequence, in the order
    title_open, title_close, para_open, para_close, branch_open, branch_close) to rename into them.
    ``lora_dir``: a PEFT LoRA adapter merged into the weights. Returns the output path.
    """
    check_outtype(outtype)
    aspd_meta.check_position_mode(position_mode)
    ckpt = Checkpoint(src_dir)
    try:
        arch = architecture_for(ckpt.config)
        vocab = read_vocab(ckpt.dir, ckpt.config)
        lora = None
        if lora_dir is not None:
            lora = LoraAdapter(lora_dir)
            lora.check_base(ckpt)
        tensors = _plan(ckpt, arch, lora)
        rows = next((t.shape[0] for t in tensors if t.name == "token_embd.weight"), None)
        if rows is None:
            raise ConvertError(f"{ckpt.dir} has no token embedding (model.embed_tokens.weight)")
        if len(vocab) > rows:
            raise ConvertError(f"the tokenizer has {len(vocab)} tokens but the embedding matrix has {rows} rows "
                               "(resize the token embeddings after adding tokens)")
        vocab.pad_to(rows)
        aspd = aspd_meta.resolve(vocab, aspd_tokens, title_separator)
        note(progress, f"{arch.name}: {len(tensors)} tensors, vocabulary {len(vocab)} ({vocab.model}), "
                       f"ASPD {'ids ' + str(list(aspd.ids)) if aspd else 'none'} -> {out_path} ({outtype})")

        def write_kv(w: GGUFWriter) -> None:
            w.add_name(str(ckpt.config.get("_name_or_path") or ckpt.dir.name))
            arch.write_hparams(w)
            _write_vocab(w, vocab)
            if aspd is not None:
                aspd_meta.write_keys(w, aspd, position_mode)

        return write_gguf(out_path, arch.name, write_kv, tensors, outtype, progress)
    finally:
        ckpt.close()


def _plan(ckpt: Checkpoint, arch: Architecture, lora: LoraAdapter | None) -> list[Tensor]:
    tensors = []
    for hf_name in ckpt.names():
        name = arch.tensor_name(hf_name)
        if name is None:
            continue
        tensors.append(Tensor(name, tuple(ckpt.shape(hf_name)), _loader(ckpt, arch, lora, hf_name, name)))
    for name, data in arch.extra_tensors().items():
        tensors.append(Tensor(name, tuple(data.shape), lambda data=data: data))
    return tensors


def _loader(ckpt: Checkpoint, arch: Architecture, lora: LoraAdapter | None, hf_name: str, name: str):
    def load():
        data = ckpt.load(hf_name)
        if lora is not None:
            data = lora.apply(hf_name, data)
        return arch.transform(name, data)

    return load


def _write_vocab(w: GGUFWriter, vocab: Vocab) -> None:
    w.add_tokenizer_model(vocab.model)
    if vocab.model == BPE:
        w.add_tokenizer_pre(vocab.pre or "default")
    else:
        w.add_tokenizer_pre("default")
    w.add_token_list(vocab.tokens)
    w.add_token_scores(vocab.scores)
    w.add_token_types(vocab.types)
    if vocab.model == BPE:
        w.add_token_merges(vocab.merges)
    for role in ("bos", "eos", "unk", "pad"):
        tid = getattr(vocab, f"{role}_id")
        if tid is not None:
            getattr(w, f"add_{role}_token_id")(tid)
    w.add_add_bos_token(vocab.add_bos)
    w.add_add_eos_token(vocab.add_eos)
    if vocab.model == SPM:
        w.add_add_space_prefix(vocab.add_space_prefix)
    if vocab.chat_template:
        w.add_chat_template(vocab.chat_template)

