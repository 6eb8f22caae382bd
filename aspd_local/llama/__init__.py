"""The llama.cpp binding layer: the only place that calls ``llama_cpp.llama_*``.

Everything above this package works with plain Python values and numpy arrays.
"""

from .batch import Batch
from .context import Context, ContextParams
from .logs import set_verbose
from .model import Model, ModelParams

__all__ = ["Batch", "Context", "ContextParams", "Model", "ModelParams", "set_verbose"]
