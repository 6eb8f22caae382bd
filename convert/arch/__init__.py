"""One module per architecture; ``architecture_for(config)`` picks the one for a config.json."""

from __future__ import annotations

from ..errors import ConvertError
from .base import Architecture
from .gemma3 import Gemma3
from .llama import Llama
from .qwen2 import Qwen2

ARCHITECTURES: tuple[type[Architecture], ...] = (Llama, Qwen2, Gemma3)


def architecture_for(config: dict) -> Architecture:
    model_type = config.get("model_type")
    for cls in ARCHITECTURES:
        if model_type in cls.model_types:
            return cls(config)
    supported = ", ".join(t for cls in ARCHITECTURES for t in cls.model_types)
    hint = " (convert the text model, Gemma3ForCausalLM)" if model_type == "gemma3" else ""
    raise ConvertError(f"unsupported architecture {model_type!r}{hint}; supported: {supported}")


__all__ = ["ARCHITECTURES", "Architecture", "architecture_for"]
