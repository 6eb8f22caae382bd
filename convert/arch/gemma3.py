"""Gemma 3 text checkpoints (Gemma3ForCausalLM) -> llama.cpp ``gemma3``.

What llama.cpp (as shipped in llama-cpp-python 0.3.36) assumes for gemma3, and so what is checked here:
- every 6th layer global, the others sliding-window (``set_swa_pattern(6)``), window from the GGUF;
- sliding layers use rope theta 10000 (hard-coded), global layers the GGUF's ``rope.freq_base``;
- queries scaled by 1/sqrt(head_dim) (1/sqrt(hidden/heads) for the 62-layer 27B);
- no attention or final logit soft-capping on sliding-window models;
- embeddings scaled by sqrt(hidden) (done by llama.cpp, as by HF);
- RMS norms multiply by ``w`` where HF Gemma multiplies by ``1 + w``: norm weights are stored + 1.
"""

from __future__ import annotations

import math

import numpy as np
from gguf import GGUFWriter, MODEL_ARCH

from .base import Architecture

SWA_PATTERN = 6
SWA_ROPE_THETA = 10000.0


class Gemma3(Architecture):
    gguf_arch = MODEL_ARCH.GEMMA3
    model_types = ("gemma3_text",)
    head_dim_keys = True

    def check(self) -> None:
        c = self.config
        act = c.get("hidden_activation") or c.get("hidden_act")
        if act != "gelu_pytorch_tanh":
            self.refuse(f"activation {act!r}")
        if not c.get("sliding_window"):
            self.refuse("a model without sliding_window")
        expected = ["sliding_attention" if (i + 1) % SWA_PATTERN else "full_attention" for i in range(self.n_layers)]
        pattern = c.get("sliding_window_pattern", c.get("_sliding_window_pattern", SWA_PATTERN))
        if pattern != SWA_PATTERN:
            self.refuse(f"sliding_window_pattern={pattern} (llama.cpp uses {SWA_PATTERN})")
        layer_types = c.get("layer_types") or expected
        if list(layer_types) != expected:
            self.refuse(f"layer_types other than 5 sliding-window layers per global one ({layer_types})")
        local = self.rope("sliding_attention")
        if float(local.get("rope_theta", SWA_ROPE_THETA)) != SWA_ROPE_THETA or local.get("rope_type", "default") != "default":
            self.refuse(f"sliding-window rope {local} (llama.cpp uses theta {SWA_ROPE_THETA:g}, unscaled)")
        if "rope_parameters" not in c and c.get("rope_local_base_freq", SWA_ROPE_THETA) != SWA_ROPE_THETA:
            self.refuse(f"rope_local_base_freq={c['rope_local_base_freq']}")
        for key in ("final_logit_softcapping", "attn_logit_softcapping"):
            if c.get(key) is not None:
                self.refuse(f"{key}={c[key]}")
        if c.get("use_bidirectional_attention"):
            self.refuse("bidirectional attention")
        scalar = float(c.get("query_pre_attn_scalar") or self.head_dim)
        llama_cpp_scalar = self.hidden / self.n_head if self.n_layers == 62 else self.head_dim
        if not math.isclose(scalar, llama_cpp_scalar):
            self.refuse(f"query_pre_attn_scalar={scalar:g} (llama.cpp uses {llama_cpp_scalar:g})")

    def rope(self, layer_type: str | None = "full_attention") -> dict:
        return super().rope(layer_type)

    def write_hparams(self, w: GGUFWriter) -> None:
        super().write_hparams(w)
        w.add_rope_freq_base_swa(SWA_ROPE_THETA)
        w.add_sliding_window(int(self.config["sliding_window"]))

    def transform(self, gguf_name: str, data: np.ndarray) -> np.ndarray:
        if gguf_name.endswith("norm.weight"):
            return data + np.float32(1.0)
        return data
