"""The global index on disk: earlier outputs survive between runs.

One ``.npz`` file per model: a format number, the model it belongs to (a key the engine derives
from the GGUF file) and its vocabulary size, the tokens of every sequence back to back, and the
sequence lengths. A damaged, truncated or foreign file (another format, another model, token ids
outside the vocabulary) is ignored -- the index starts empty and the next save replaces the file --
never a crash. Saving writes a temporary file and renames it, so a crash mid-save loses nothing.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from .index import SENTINEL, TokenIndex

log = logging.getLogger("aspd_local")
_FORMAT = 2


def load_index(path: str, max_depth: int = 64, *, model_key: str = "", n_vocab: int | None = None,
               max_tokens: int | None = None) -> TokenIndex:
    """The index saved at ``path``, or an empty one when there is none or it cannot be trusted.
    ``max_tokens`` drops the oldest sequences beyond the bound."""
    if not os.path.exists(path):
        return TokenIndex(max_depth)
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != _FORMAT:
                raise ValueError(f"format {int(data['format'])}, expected {_FORMAT}")
            if str(data["model"]) != model_key:
                raise ValueError("written for another model")
            tokens = np.asarray(data["tokens"])
            lengths = np.asarray(data["lengths"])
        if tokens.ndim != 1 or lengths.ndim != 1 or tokens.dtype.kind not in "iu" or lengths.dtype.kind not in "iu":
            raise ValueError("unexpected array shapes")
        tokens = tokens.astype(np.int64)
        lengths = lengths.astype(np.int64)
        if (lengths < 0).any() or int(lengths.sum()) != tokens.shape[0]:
            raise ValueError("sequence lengths do not add up")
        if tokens.size and (tokens.min() < 0 or (n_vocab is not None and tokens.max() >= n_vocab)):
            raise ValueError("token ids outside the vocabulary")
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        first = 0
        if max_tokens is not None:  # keep the newest sequences that fit
            kept_from_end = bounds[-1] - bounds
            first = int(np.flatnonzero(kept_from_end <= max_tokens)[0])
        seqs = [tokens[bounds[i]:bounds[i + 1]] for i in range(first, lengths.shape[0])]
        return TokenIndex.from_sequences(seqs, max_depth)
    except Exception as e:  # noqa: BLE001 - any damage means: start empty
        log.warning("ignoring the suffix cache %s (%s); starting a new one", path, e)
        return TokenIndex(max_depth)


@dataclass(frozen=True)
class IndexSnapshot:
    """A copy of an index's tokens, taken on the thread that changes the index, to be written on another.
    ``corpus`` is the index's corpus (each sequence followed by the sentinel), ``lengths`` its sequence
    lengths."""

    corpus: np.ndarray
    lengths: np.ndarray

    @property
    def n_sequences(self) -> int:
        return int(self.lengths.shape[0])


def snapshot_index(index: TokenIndex) -> IndexSnapshot:
    """Copy what ``save_snapshot`` writes: one copy of the corpus array and of the lengths (about a
    millisecond for a million tokens), nothing else; the positions lists are not needed."""
    return IndexSnapshot(index.corpus.copy(), np.array(index.seq_lengths, dtype=np.int64))


def save_snapshot(snap: IndexSnapshot, path: str, *, model_key: str = "") -> None:
    """Write a snapshot in the format ``load_index`` reads (a temporary file, then a rename)."""
    tokens = snap.corpus[snap.corpus != SENTINEL]  # token ids are >= 0: only the separators go
    if tokens.shape[0] != int(snap.lengths.sum()):
        raise ValueError("the snapshot's sequence lengths do not match its corpus")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".suffix-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, format=np.array(_FORMAT), model=np.array(model_key), tokens=tokens.astype(np.int32),
                     lengths=snap.lengths.astype(np.int64))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_index(index: TokenIndex, path: str, *, model_key: str = "") -> None:
    """Write ``index`` now, on this thread (``suffix/saver.py`` writes in the background)."""
    save_snapshot(snapshot_index(index), path, model_key=model_key)
