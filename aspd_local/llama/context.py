"""A llama.cpp context: one unified KV cache shared by many sequence ids."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

import llama_cpp

from ..errors import DecodeError
from .batch import Batch
from .model import Model


@dataclass
class ContextParams:
    """Context settings. ``n_seq_max`` must cover the branch cap (plus draft paths when speculating)."""

    n_ctx: int = 4096
    n_batch: int = 512
    n_seq_max: int = 16
    n_threads: int | None = None
    kv_unified: bool = True
    # A full-size sliding-window cache keeps every cell of a sequence, so rolling a
    # sequence back (cancel, speculation, a new chat turn) never lacks a cell.
    swa_full: bool = True


class KvFull(Exception):
    """llama_decode found no room in the KV cache for the batch (nothing was written)."""


class Context:
    """Owns the llama_context, its batch buffer and the timing of every decode call."""

    def __init__(self, model: Model, params: ContextParams | None = None):
        self.model = model
        self.params = params = params or ContextParams()
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = params.n_ctx
        cp.n_batch = params.n_batch
        cp.n_ubatch = params.n_batch
        cp.n_seq_max = params.n_seq_max
        threads = params.n_threads or max(1, os.cpu_count() or 1)
        cp.n_threads = threads
        cp.n_threads_batch = threads
        cp.kv_unified = params.kv_unified
        cp.swa_full = params.swa_full
        cp.no_perf = True
        ptr = llama_cpp.llama_init_from_model(model.ptr, cp)
        if not ptr:
            raise DecodeError(f"llama.cpp could not create a context (n_ctx={params.n_ctx}, n_seq_max={params.n_seq_max})")
        self._ptr = ptr
        self.n_threads = threads
        self.n_ctx = int(llama_cpp.llama_n_ctx(ptr))
        self.n_seq_max = int(llama_cpp.llama_n_seq_max(ptr))
        self._mem = llama_cpp.llama_get_memory(ptr)
        self.n_batch = int(llama_cpp.llama_n_batch(ptr))  # llama.cpp may lower it (never above n_ctx)
        self.batch = Batch(self.n_batch, self.n_seq_max)
        self.n_vocab = model.n_vocab
        # accounting, read by the statistics
        self.decode_calls = 0
        self.decode_tokens = 0
        self.decode_s = 0.0

    # -- lifetime -------------------------------------------------------------
    @property
    def ptr(self):
        if self._ptr is None:
            raise RuntimeError("context is closed")
        return self._ptr

    def close(self) -> None:
        if self._ptr is not None:
            self.batch.free()
            llama_cpp.llama_free(self._ptr)
            self._ptr = None

    def __del__(self):  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass

    # -- decoding -------------------------------------------------------------
    def decode(self, batch: Batch | None = None) -> None:
        """Run one ``llama_decode`` over the batch. Raises KvFull when the cache has no room."""
        batch = batch or self.batch
        if batch.n == 0:
            return
        if batch.n > self.n_batch:  # llama.cpp would abort the process
            raise DecodeError(f"batch of {batch.n} tokens exceeds n_batch={self.n_batch}")
        t0 = time.perf_counter()
        rc = llama_cpp.llama_decode(self.ptr, batch.raw)
        self.decode_s += time.perf_counter() - t0
        if rc == 1:
            raise KvFull()
        if rc != 0:
            raise DecodeError(f"llama_decode failed with code {rc}")
        self.decode_calls += 1
        self.decode_tokens += batch.n

    def logits(self, row: int) -> np.ndarray:
        """Logits of batch row ``row`` of the last decode: a read-only view, valid until the next decode."""
        ptr = llama_cpp.llama_get_logits_ith(self.ptr, row)
        if not ptr:
            raise DecodeError(f"no logits for batch row {row}")
        view = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        view.flags.writeable = False
        return view

    # -- KV memory ------------------------------------------------------------
    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        llama_cpp.llama_memory_seq_cp(self._mem, src, dst, p0, p1)

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> bool:
        return bool(llama_cpp.llama_memory_seq_rm(self._mem, seq, p0, p1))

    def seq_pos_min(self, seq: int) -> int:
        return int(llama_cpp.llama_memory_seq_pos_min(self._mem, seq))

    def seq_pos_max(self, seq: int) -> int:
        return int(llama_cpp.llama_memory_seq_pos_max(self._mem, seq))

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)
