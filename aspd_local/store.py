"""The user's cache on disk and the checksums of the files in it.

A leaf of the package: it imports nothing from ``aspd_local`` but ``errors``, so that the registry of
bases (``aspd_local.bases``), the torch-free build (``aspd_local.build``), the default model
(``aspd_local.models``) and the trainer can all use it without importing each other. The layers::

    store <- bases <- build <- models
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1 << 22  # bytes read at a time while hashing


def cache_dir() -> Path:
    """``$ASPD_LOCAL_CACHE``, else ``$XDG_CACHE_HOME/aspd-local``, else ``~/.cache/aspd-local``."""
    env = os.environ.get("ASPD_LOCAL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "aspd-local"


def models_dir() -> Path:
    """Where base GGUFs are assembled and built models are written: ``cache_dir()/models``."""
    return cache_dir() / "models"


def sha256_of(path, chunk: int = CHUNK) -> str:
    """The sha256 of a file, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cached_sha256(path, memo_dir=None) -> str:
    """``sha256_of(path)``, remembered in ``memo_dir`` (default ``cache_dir()/checksums``) under the file's
    name, size and mtime, so that a large file is hashed once until it changes."""
    path = Path(path)
    st = path.stat()
    memo_dir = Path(memo_dir) if memo_dir is not None else cache_dir() / "checksums"
    memo = memo_dir / f"{path.name}-{st.st_size}-{int(st.st_mtime)}.sha256"
    if memo.exists():
        return memo.read_text().strip()
    digest = sha256_of(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(".partial")
    tmp.write_text(digest)
    os.replace(tmp, memo)
    return digest
