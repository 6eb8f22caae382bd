"""The global index on disk: earlier outputs survive between runs. A damaged file is ignored (and
replaced at the next save), never a crash."""

from __future__ import annotations

import logging
import os
import tempfile

import numpy as np

from .index import TokenIndex

log = logging.getLogger("aspd_local")
_FORMAT = 1


def load_index(path: str, max_depth: int = 64) -> TokenIndex:
    index = TokenIndex(max_depth)
    if not os.path.exists(path):
        return index
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != _FORMAT:
                raise ValueError("unknown format")
            tokens = data["tokens"].astype(np.int64)
            lengths = data["lengths"].astype(np.int64)
        if lengths.sum() != tokens.shape[0] or (lengths < 0).any() or (tokens < 0).any():
            raise ValueError("inconsistent lengths")
        pos = 0
        for n in lengths.tolist():
            index.add_sequence(tokens[pos:pos + n])
            pos += n
    except Exception as e:  # noqa: BLE001 - any damage means: start empty
        log.warning("ignoring damaged suffix cache %s (%s); starting a new one", path, e)
        return TokenIndex(max_depth)
    return index


def save_index(index: TokenIndex, path: str) -> None:
    seqs = list(index.sequences())
    tokens = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int32)
    lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".suffix-", suffix=".npz", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, format=np.array(_FORMAT), tokens=tokens.astype(np.int32), lengths=lengths)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
