"""GGUF -> Hugging Face directory: a float model transformers can train, made from a GGUF llama.cpp serves.

transformers reads the GGUF (dequantizing its weights) but will not save that model as it is loaded
(it carries a GGUF ``quantization_config``); the weights are copied into a fresh model built from the
same configuration, which is saved with the tokenizer. The directory appears only when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import ConvertError
from .progress import note


def hf_dir_from_gguf(gguf_path, out_dir, *, dtype: str = "float32", progress: bool = True) -> Path:
    """Write the model in ``gguf_path`` as a Hugging Face directory ``out_dir`` (config, safetensors,
    tokenizer). ``out_dir`` must not exist yet; it is written under a temporary name and renamed."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    if not gguf_path.is_file():
        raise ConvertError(f"GGUF file not found: {gguf_path}")
    if out_dir.exists():
        raise ConvertError(f"output directory already exists: {out_dir}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
        raise ConvertError(f"unknown float dtype {dtype!r} (use float32, bfloat16 or float16)")
    src_dir, name = str(gguf_path.parent), gguf_path.name
    note(progress, f"reading the tokenizer of {gguf_path} ...")
    try:
        tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
        note(progress, f"reading and dequantizing the weights of {gguf_path} ...")
        loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    except (ValueError, OSError, KeyError) as e:
        raise ConvertError(f"transformers cannot read {gguf_path}: {e}") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch_dtype
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k not in _tied_names(model)]
    if missing or unexpected:
        raise ConvertError(f"weights of {gguf_path} do not fit its configuration "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    del loaded
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        note(progress, f"saving the {dtype} model to {out_dir} ...")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _tied_names(model) -> set[str]:
    keys = getattr(model, "_tied_weights_keys", None) or {}
    return set(keys) if not isinstance(keys, dict) else set(keys)
