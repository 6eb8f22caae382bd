"""What every architecture shares: reading config.json, GGUF hyper-parameters, tensor names.

An architecture turns a Hugging Face config into llama.cpp's hyper-parameter keys, names each HF
tensor the way llama.cpp looks it up (gguf's TensorNameMap), and rewrites a tensor where the two
libraries store it differently. It refuses, with one message, any setting llama.cpp would silently
compute differently.
"""

from __future__ import annotations

import numpy as np
from gguf import GGUFWriter, MODEL_ARCH, MODEL_ARCH_NAMES, TensorNameMap

from ..errors import ConvertError

# HF tensors that carry no weights llama.cpp needs (rotary caches).
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq", ".attn.masked_bias", ".attn.bias")


class Architecture:
    """Base class; subclasses set ``gguf_arch`` and may override the hooks."""

    gguf_arch: MODEL_ARCH
    model_types: tuple[str, ...] = ()
    head_dim_keys: bool = False  # always write attention.key_length / value_length

    def __init__(self, config: dict):
        self.config = config
        self.n_layers = int(self._require("num_hidden_layers"))
        self.hidden = int(self._require("hidden_size"))
        self.n_head = int(self._require("num_attention_heads"))
        self.n_head_kv = int(config.get("num_key_value_heads") or self.n_head)
        self.head_dim = int(config.get("head_dim") or self.hidden // self.n_head)
        self.tied = bool(config.get("tie_word_embeddings", False))
        self._names = TensorNameMap(self.gguf_arch, self.n_layers)
        self.check()

    @property
    def name(self) -> str:
        return MODEL_ARCH_NAMES[self.gguf_arch]

    def _require(self, key: str):
        value = self.config.get(key)
        if value is None:
            raise ConvertError(f"config.json lacks {key!r}")
        return value

    def refuse(self, what: str) -> None:
        raise ConvertError(f"{self.config.get('model_type')}: {what} cannot be represented in a llama.cpp "
                           f"{self.name} GGUF")

    # -- hooks ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise ConvertError for settings llama.cpp would not reproduce."""
        if self.config.get("hidden_act", self.config.get("hidden_activation", "silu")) != "silu":
            self.refuse(f"activation {self.config.get('hidden_act')!r}")

    def rope(self, layer_type: str | None = None) -> dict:
        """Rope parameters (theta, type, scaling) from ``rope_parameters`` (transformers 5) or the older
        ``rope_theta`` + ``rope_scaling`` keys."""
        params = self.config.get("rope_parameters")
        if isinstance(params, dict) and layer_type and layer_type in params:
            params = params[layer_type]
        if isinstance(params, dict) and "rope_theta" in params:
            return dict(params)
        out = dict(self.config.get("rope_scaling") or {})
        out.setdefault("rope_type", out.get("type", "default"))
        out["rope_theta"] = self.config.get("rope_theta", 10000.0)
        return out

    def write_hparams(self, w: GGUFWriter) -> None:
        c = self.config
        w.add_context_length(int(c.get("max_position_embeddings") or 4096))
        w.add_embedding_length(self.hidden)
        w.add_block_count(self.n_layers)
        w.add_feed_forward_length(int(self._require("intermediate_size")))
        w.add_head_count(self.n_head)
        w.add_head_count_kv(self.n_head_kv)
        w.add_layer_norm_rms_eps(float(c.get("rms_norm_eps", 1e-6)))
        if self.head_dim_keys or self.head_dim != self.hidden // self.n_head:
            w.add_key_length(self.head_dim)
            w.add_value_length(self.head_dim)
        w.add_rope_dimension_count(self.head_dim)
        self.write_rope(w, self.rope())

    def write_rope(self, w: GGUFWriter, rope: dict) -> None:
        w.add_rope_freq_base(float(rope["rope_theta"]))
        kind = rope.get("rope_type", "default")
        if kind == "default":
            return
        if kind == "linear":
            w.add_rope_scaling_type(_rope_scaling("LINEAR"))
            w.add_rope_scaling_factor(float(rope["factor"]))
        elif kind == "yarn":
            w.add_rope_scaling_type(_rope_scaling("YARN"))
            w.add_rope_scaling_factor(float(rope["factor"]))
            orig = rope.get("original_max_position_embeddings")
            if orig:
                w.add_rope_scaling_orig_ctx_len(int(orig))
        else:
            self.refuse(f"rope scaling {kind!r}")

    def tensor_name(self, hf_name: str) -> str | None:
        """The GGUF name of an HF tensor; None for tensors llama.cpp does not use."""
        if hf_name.endswith(_IGNORED_SUFFIXES):
            return None
        name = self._names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConvertError(f"tensor {hf_name!r} has no place in a llama.cpp {self.name} model")
        if name == "output.weight" and self.tied:
            return None  # llama.cpp reuses token_embd
        return name

    def transform(self, gguf_name: str, data: np.ndarray) -> np.ndarray:
        """Rewrite a tensor where llama.cpp stores it differently (default: as is)."""
        return data

    def extra_tensors(self) -> dict[str, np.ndarray]:
        """Tensors llama.cpp needs that the checkpoint does not hold (computed from the config)."""
        return {}


def _rope_scaling(name: str):
    from gguf import RopeScalingType

    return getattr(RopeScalingType, name)
