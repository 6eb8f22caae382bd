"""Qwen2 / Qwen2.5 checkpoints -> llama.cpp ``qwen2`` (q/k/v biases, rope as in HF, no permutation)."""

from __future__ import annotations

from gguf import MODEL_ARCH

from .base import Architecture


class Qwen2(Architecture):
    gguf_arch = MODEL_ARCH.QWEN2
    model_types = ("qwen2",)

    def check(self) -> None:
        super().check()
        if self.config.get("use_sliding_window"):
            self.refuse("use_sliding_window=true")
