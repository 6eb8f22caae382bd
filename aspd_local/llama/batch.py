"""A reusable ``llama_batch``: tokens, positions, sequence ids, and which rows want logits."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

import llama_cpp


class Batch:
    """Fixed-capacity batch. ``add`` returns the row index, which is also the logits index after decoding."""

    def __init__(self, capacity: int, n_seq_max: int):
        self.capacity = int(capacity)
        self.n_seq_max = int(n_seq_max)
        self._b = llama_cpp.llama_batch_init(self.capacity, 0, self.n_seq_max)
        self._token = np.ctypeslib.as_array(self._b.token, shape=(self.capacity,))
        self._pos = np.ctypeslib.as_array(self._b.pos, shape=(self.capacity,))
        self._n_seq = np.ctypeslib.as_array(self._b.n_seq_id, shape=(self.capacity,))
        self._logits = np.ctypeslib.as_array(self._b.logits, shape=(self.capacity,))
        self._seq_rows = [np.ctypeslib.as_array(self._b.seq_id[i], shape=(self.n_seq_max,)) for i in range(self.capacity)]
        self.n = 0

    @property
    def raw(self):
        self._b.n_tokens = self.n
        return self._b

    def clear(self) -> None:
        self.n = 0

    def add(self, token: int, pos: int, seq_ids: int | Iterable[int], logits: bool) -> int:
        i = self.n
        if i >= self.capacity:
            raise OverflowError(f"batch capacity {self.capacity} exceeded")
        self._token[i] = token
        self._pos[i] = pos
        if isinstance(seq_ids, int):
            self._seq_rows[i][0] = seq_ids
            self._n_seq[i] = 1
        else:
            ids = list(seq_ids)
            self._seq_rows[i][: len(ids)] = ids
            self._n_seq[i] = len(ids)
        self._logits[i] = 1 if logits else 0
        self.n = i + 1
        return i

    def tokens(self) -> list[int]:
        return self._token[: self.n].tolist()

    def free(self) -> None:
        if self._b is not None:
            llama_cpp.llama_batch_free(self._b)
            self._b = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.free()
        except Exception:
            pass


class StepPart:
    """One request's rows of the next ``llama_decode``: built by the request, placed into the shared batch
    by the scheduler (rows ``offset`` .. ``offset + n - 1``), then recorded in the KV mirror."""

    __slots__ = ("tokens", "positions", "seqs", "logits", "offset", "failed", "batch_n", "decode_s")

    def __init__(self):
        self.tokens: list[int] = []
        self.positions: list[int] = []
        self.seqs: list[tuple[int, ...]] = []
        self.logits: list[bool] = []
        self.offset = 0
        self.failed = False  # llama.cpp found no room for it (nothing was written)
        self.batch_n = 0  # rows of the whole decode it was part of (every request's), and that decode's time
        self.decode_s = 0.0

    @property
    def n(self) -> int:
        return len(self.tokens)

    def clear(self) -> None:
        self.tokens.clear()
        self.positions.clear()
        self.seqs.clear()
        self.logits.clear()
        self.failed = False

    def add(self, token: int, pos: int, seq_ids: int | Iterable[int], logits: bool) -> int:
        """Add a row; returns its index within this part."""
        self.tokens.append(int(token))
        self.positions.append(int(pos))
        self.seqs.append((seq_ids,) if isinstance(seq_ids, int) else tuple(seq_ids))
        self.logits.append(bool(logits))
        return len(self.tokens) - 1

    def place(self, batch: "Batch") -> None:
        """Append this part's rows to ``batch`` and remember where they start."""
        self.offset = batch.n
        for t, p, s, lg in zip(self.tokens, self.positions, self.seqs, self.logits):
            batch.add(t, p, s, lg)
