"""The float base model in torch: a GGUF llama.cpp serves, read back by transformers (once, cached as
a Hugging Face directory by the converter's ``hf_dir_from_gguf``)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import AspdLocalError
from ..store import cache_dir, cached_sha256, sha256_of


class TrainError(AspdLocalError):
    """Training cannot start or go on (bad data, missing model, an unsupported architecture)."""


def file_sha256(path, chunk: int = 1 << 22) -> str:
    """The sha256 of a file (``aspd_local.store.sha256_of``)."""
    return sha256_of(path, chunk)


def float_model_dir(gguf_path, root=None, progress: bool = True) -> Path:
    """A Hugging Face directory (float32) holding the weights of ``gguf_path``, made once under ``root``
    (default ``cache_dir()/hf``) and keyed by the GGUF's checksum."""
    from convert.from_gguf import hf_dir_from_gguf

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise TrainError(f"base model not found: {gguf_path}")
    root = Path(root) if root is not None else cache_dir() / "hf"
    key = _cached_checksum(gguf_path)[:16]
    out = root / f"{gguf_path.stem}-{key}"
    if not (out / "config.json").exists():
        hf_dir_from_gguf(gguf_path, out, dtype="float32", progress=progress)
    return out


def _cached_checksum(path: Path) -> str:
    """sha256 of a large file, remembered next to the cache by size and mtime (``aspd_local.store.cached_sha256``)."""
    return cached_sha256(path, cache_dir() / "hf" / "checksums")


def load_float_model(hf_dir, dtype=None, attn: str = "sdpa"):
    """The causal LM from a Hugging Face directory, in eval mode, on the CPU. ``attn``: "sdpa" or "eager"
    (both honour a 4-D float mask)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=dtype or torch.float32, attn_implementation=attn)
    model.eval()
    return model
