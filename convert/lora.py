"""A PEFT LoRA adapter directory, merged into the base weights as they are read.

``W' = W + s * B @ A`` with ``s = lora_alpha / r`` (``lora_alpha / sqrt(r)`` with rsLoRA; per-module
``rank_pattern`` / ``alpha_pattern`` honoured); embedding LoRA adds ``(B @ A)^T``; tensors saved whole
(``modules_to_save``) replace the base ones. Before anything is written, every adapted module must
exist in the base with the shape the adapter was trained on.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from .errors import ConvertError
from .safetensors_np import load_file
from .source import Checkpoint, torch_for

_PREFIX = "base_model.model."
_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<part>lora_A|lora_B)(?:\.[^.]+)?\.weight$")
_EMB_KEY = re.compile(r"^(?P<module>.+)\.(?P<part>lora_embedding_A|lora_embedding_B)(?:\.[^.]+)?$")


class LoraAdapter:
    def __init__(self, adapter_dir):
        self.dir = Path(adapter_dir)
        cfg_path = self.dir / "adapter_config.json"
        if not cfg_path.is_file():
            raise ConvertError(f"no adapter_config.json in {self.dir}: not a PEFT adapter directory")
        try:
            self.config: dict = json.loads(cfg_path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ConvertError(f"cannot read {cfg_path}: {e}") from None
        c = self.config
        if c.get("peft_type", "LORA") != "LORA":
            raise ConvertError(f"{self.dir}: only LoRA adapters can be merged (this one is {c.get('peft_type')})")
        if c.get("use_dora"):
            raise ConvertError(f"{self.dir}: DoRA adapters are not supported")
        if c.get("bias", "none") != "none":
            raise ConvertError(f"{self.dir}: LoRA adapters with trained biases (bias={c['bias']!r}) are not supported")
        self.fan_in_fan_out = bool(c.get("fan_in_fan_out"))
        pairs: dict[str, dict[str, np.ndarray]] = {}
        self.embedding_modules: set[str] = set()
        self.replacements: dict[str, np.ndarray] = {}
        for key, value in _read_weights(self.dir).items():
            key = key[len(_PREFIX):] if key.startswith(_PREFIX) else key
            key = key.replace(".base_layer.", ".")  # embeddings saved whole next to their LoRA (resized vocab)
            m = _LORA_KEY.match(key) or _EMB_KEY.match(key)
            if m:
                part = m["part"]
                if part.startswith("lora_embedding"):
                    self.embedding_modules.add(m["module"])
                pairs.setdefault(m["module"], {})[part[-1]] = value
            else:
                self.replacements[key] = value
        self.pairs = {}
        for module, ab in pairs.items():
            if set(ab) != {"A", "B"}:
                raise ConvertError(f"{self.dir}: LoRA weights of {module} are incomplete (have {sorted(ab)})")
            a, b = ab["A"], ab["B"]
            if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
                raise ConvertError(f"{self.dir}: LoRA weights of {module} do not fit each other "
                                   f"(A {tuple(a.shape)}, B {tuple(b.shape)})")
            self.pairs[module + ".weight"] = (module, a, b)
        if not self.pairs and not self.replacements:
            raise ConvertError(f"{self.dir}: the adapter holds no weights")

    # -- checks ----------------------------------------------------------------------------------
    def check_base(self, ckpt: Checkpoint) -> None:
        """Raise ConvertError unless every adapted tensor exists in the base with the adapter's shape."""
        for name, (module, a, b) in self.pairs.items():
            if name not in ckpt:
                raise ConvertError(f"the LoRA adapter in {self.dir} does not match the base model: "
                                   f"the base has no {name}")
            shape = ckpt.shape(name)
            expected = self.delta_shape(module, a, b)
            if tuple(shape) != expected:
                raise ConvertError(f"the LoRA adapter in {self.dir} does not match the base model: {name} is "
                                   f"{tuple(shape)} in the base, the adapter was trained on {expected}")
        for name, value in self.replacements.items():
            if name not in ckpt:
                raise ConvertError(f"the LoRA adapter in {self.dir} does not match the base model: "
                                   f"the base has no {name}")
            if tuple(ckpt.shape(name)) != tuple(value.shape):
                raise ConvertError(f"the LoRA adapter in {self.dir} does not match the base model: {name} is "
                                   f"{tuple(ckpt.shape(name))} in the base, {tuple(value.shape)} in the adapter")

    def delta_shape(self, module: str, a: np.ndarray, b: np.ndarray) -> tuple[int, ...]:
        """The shape of the base tensor that ``module``'s A and B adapt."""
        if module in self.embedding_modules:
            return (a.shape[1], b.shape[0])
        shape = (b.shape[0], a.shape[1])
        return shape[::-1] if self.fan_in_fan_out else shape

    # -- merge -----------------------------------------------------------------------------------
    def scale(self, module: str, rank: int) -> float:
        return lora_scale(self.config, module, rank)

    def delta(self, name: str) -> np.ndarray | None:
        """``s * B @ A`` in the orientation of the base tensor ``name`` (None where nothing adapts it)."""
        entry = self.pairs.get(name)
        if entry is None:
            return None
        module, a, b = entry
        delta = b.astype(np.float32) @ a.astype(np.float32)
        if module in self.embedding_modules or self.fan_in_fan_out:
            delta = delta.T
        return np.float32(self.scale(module, a.shape[0])) * delta

    def apply(self, name: str, data: np.ndarray) -> np.ndarray:
        """The base tensor ``name`` with this adapter merged in."""
        if name in self.replacements:
            data = self.replacements[name].astype(np.float32)
        delta = self.delta(name)
        return data if delta is None else data + delta


def lora_scale(config: dict, module: str, rank: int) -> float:
    """The factor of ``B @ A`` for ``module`` under a peft LoRA ``config`` (rank and alpha patterns, rsLoRA)."""
    r = _pattern_value(config.get("rank_pattern") or {}, module, config.get("r", rank))
    alpha = _pattern_value(config.get("alpha_pattern") or {}, module, config.get("lora_alpha", r))
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def _pattern_value(patterns: dict, module: str, default):
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


def _read_weights(d: Path) -> dict[str, np.ndarray]:
    st, pt = d / "adapter_model.safetensors", d / "adapter_model.bin"
    try:
        if st.is_file():
            return load_file(st)  # numpy alone
        if pt.is_file():
            torch = torch_for(pt)
            tensors = torch.load(pt, map_location="cpu", weights_only=True)
            return {k: v.float().numpy() for k, v in tensors.items()}
        raise ConvertError(f"no adapter weights in {d}: expected adapter_model.safetensors or adapter_model.bin")
    except ConvertError:
        raise
    except Exception as e:
        raise ConvertError(f"cannot read the adapter weights in {d}: {e}") from None
