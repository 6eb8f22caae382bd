"""Decoding strategies: prompt prefill and the hybrid serial-parallel decoder."""

from .hybrid import Caps, HybridDecoder, Mode
from .prefill import prefill

__all__ = ["Caps", "HybridDecoder", "Mode", "prefill"]
