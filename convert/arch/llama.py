"""Llama 2/3, Vicuna and Mistral-style checkpoints -> llama.cpp ``llama``.

llama.cpp rotates query/key pairs that sit next to each other, HF pairs dimension i with i + d/2:
the q/k projections are permuted per head. Llama 3.1 rope scaling becomes a ``rope_freqs`` tensor.
"""

from __future__ import annotations

import math

import numpy as np
from gguf import GGUFWriter, MODEL_ARCH

from .base import Architecture


def permute_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder each head's rows from halves (HF) to interleaved pairs (llama.cpp)."""
    rows = w.shape[0]
    return w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class Llama(Architecture):
    gguf_arch = MODEL_ARCH.LLAMA
    model_types = ("llama", "mistral")

    def check(self) -> None:
        super().check()
        if self.config.get("mlp_bias"):
            self.refuse("mlp_bias")
        if self.config.get("model_type") == "mistral" and self.config.get("sliding_window"):
            self.refuse(f"sliding window attention (sliding_window={self.config['sliding_window']})")

    def write_rope(self, w: GGUFWriter, rope: dict) -> None:
        if rope.get("rope_type") == "llama3":
            w.add_rope_freq_base(float(rope["rope_theta"]))  # the scaling lives in rope_freqs
            return
        super().write_rope(w, rope)

    def transform(self, gguf_name: str, data: np.ndarray) -> np.ndarray:
        if gguf_name.endswith(("attn_q.weight", "attn_q.bias")):
            return permute_rows(data, self.n_head)
        if gguf_name.endswith(("attn_k.weight", "attn_k.bias")):
            return permute_rows(data, self.n_head_kv)
        return data

    def extra_tensors(self) -> dict[str, np.ndarray]:
        rope = self.rope()
        if rope.get("rope_type") != "llama3":
            return {}
        return {"rope_freqs.weight": llama3_rope_divisors(rope, self.head_dim)}


def llama3_rope_divisors(rope: dict, dim: int) -> np.ndarray:
    """Per frequency, the number llama.cpp divides it by to get Llama 3.1's scaled frequency."""
    base = float(rope["rope_theta"])
    factor = float(rope.get("factor", 8.0))
    low = float(rope.get("low_freq_factor", 1.0))
    high = float(rope.get("high_freq_factor", 4.0))
    old_ctx = float(rope.get("original_max_position_embeddings", 8192))
    out = []
    for i in range(0, dim, 2):
        freq = 1.0 / base ** (i / dim)
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)
