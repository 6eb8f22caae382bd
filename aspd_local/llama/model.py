"""A loaded GGUF model and its vocabulary."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np

import llama_cpp

from ..errors import ModelLoadError
from . import logs

_GGUF_MAGIC = b"GGUF"
_backend_ready = False


def _ensure_backend() -> None:
    global _backend_ready
    if not _backend_ready:
        logs.install()
        llama_cpp.llama_backend_init()
        _backend_ready = True


@dataclass
class ModelParams:
    """How to load a model. ``n_gpu_layers=-1`` offloads every layer when llama.cpp was built with a GPU backend."""

    n_gpu_layers: int = -1
    use_mmap: bool = True
    # llama.cpp's extra CPU weight layouts (repacking). None = automatic: off when the CPU backend was built
    # with AMX, whose repacked k-quant kernels crash in the llama.cpp of llama-cpp-python 0.3.36.
    # The environment variable ASPD_LOCAL_EXTRA_BUFTS=0/1 overrides the automatic choice.
    extra_buffer_types: bool | None = None


def _system_info() -> str:
    return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")


def use_extra_buffer_types(requested: bool | None = None) -> bool:
    """Whether to let llama.cpp repack weights into its extra CPU buffer types (see ModelParams)."""
    env = os.environ.get("ASPD_LOCAL_EXTRA_BUFTS")
    if env is not None and env.strip() in ("0", "1"):
        return env.strip() == "1"
    if requested is not None:
        return requested
    _ensure_backend()
    return "AMX_INT8 = 1" not in _system_info()


def check_gguf_file(path: str) -> None:
    """Raise ModelLoadError with one clear line unless ``path`` looks like a GGUF file."""
    if not os.path.exists(path):
        raise ModelLoadError(f"model file not found: {path}")
    if not os.path.isfile(path):
        raise ModelLoadError(f"not a file: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != _GGUF_MAGIC:
        raise ModelLoadError(f"not a GGUF file (bad magic {magic!r}): {path}")


class Model:
    """A llama.cpp model: weights, vocabulary and GGUF metadata."""

    def __init__(self, path: str, params: ModelParams | None = None):
        _ensure_backend()
        params = params or ModelParams()
        path = os.fspath(path)
        check_gguf_file(path)
        mparams = llama_cpp.llama_model_default_params()
        n_gpu = params.n_gpu_layers
        if n_gpu < 0:
            n_gpu = 999 if llama_cpp.llama_supports_gpu_offload() else 0
        mparams.n_gpu_layers = n_gpu
        mparams.use_mmap = params.use_mmap
        mparams.use_extra_bufts = use_extra_buffer_types(params.extra_buffer_types)
        logs.take_errors()
        ptr = llama_cpp.llama_model_load_from_file(path.encode("utf-8"), mparams)
        if not ptr:
            detail = "; ".join(logs.take_errors()[-2:]) or "llama.cpp could not load it"
            raise ModelLoadError(f"cannot load model {path}: {detail}")
        self.path = path
        self.n_gpu_layers = n_gpu
        self._ptr = ptr
        self._vocab = llama_cpp.llama_model_get_vocab(ptr)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._piece_cache: dict[int, bytes] = {}

    # -- lifetime -------------------------------------------------------------
    @property
    def ptr(self):
        if self._ptr is None:
            raise RuntimeError("model is closed")
        return self._ptr

    def close(self) -> None:
        if self._ptr is not None:
            llama_cpp.llama_model_free(self._ptr)
            self._ptr = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # -- metadata -------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """A scalar GGUF metadata value as a string, or None when absent."""
        size = 256
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    @cached_property
    def description(self) -> str:
        buf = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self.ptr, buf, 256)
        return buf.value.decode("utf-8", errors="replace")

    @property
    def n_params(self) -> int:
        return int(llama_cpp.llama_model_n_params(self.ptr))

    @property
    def n_ctx_train(self) -> int:
        return int(llama_cpp.llama_model_n_ctx_train(self.ptr))

    def chat_template(self) -> str | None:
        raw = llama_cpp.llama_model_chat_template(self.ptr, None)
        return raw.decode("utf-8", errors="replace") if raw else None

    # -- vocabulary -----------------------------------------------------------
    @property
    def bos(self) -> int:
        return int(llama_cpp.llama_vocab_bos(self._vocab))

    @property
    def eos(self) -> int:
        return int(llama_cpp.llama_vocab_eos(self._vocab))

    @property
    def add_bos(self) -> bool:
        return bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    @cached_property
    def token_attrs(self) -> np.ndarray:
        """llama.cpp's attribute bits for every token (int32 array of n_vocab)."""
        get = llama_cpp.llama_vocab_get_attr
        v = self._vocab
        return np.fromiter((get(v, i) for i in range(self.n_vocab)), dtype=np.int32, count=self.n_vocab)

    @cached_property
    def control_ids(self) -> np.ndarray:
        """Ids of every CONTROL token (never produced from plain text)."""
        return np.flatnonzero(self.token_attrs & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL).astype(np.int32)

    @cached_property
    def eog_ids(self) -> np.ndarray:
        """Ids of every end-of-generation token (EOS, EOT, ...)."""
        cands = set(int(t) for t in self.control_ids) | {self.eos}
        return np.array(sorted(t for t in cands if t >= 0 and self.is_eog(t)), dtype=np.int32)

    def token_text(self, token: int) -> str:
        raw = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def find_token(self, text: str) -> int | None:
        """The id of the vocabulary entry spelled exactly ``text`` (special tokens included)."""
        ids = self.tokenize(text, add_special=False, parse_special=True)
        if len(ids) == 1 and self.token_text(ids[0]) == text:
            return ids[0]
        return None

    def tokenize(self, text: str, add_special: bool = False, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 8
        buf = (llama_cpp.llama_token * n_max)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, n_max, add_special, parse_special)
        if n < 0:
            n_max = -n
            buf = (llama_cpp.llama_token * n_max)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, n_max, add_special, parse_special)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for (control tokens render as nothing)."""
        cached = self._piece_cache.get(token)
        if cached is not None:
            return cached
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
        out = buf.raw[:n]
        self._piece_cache[token] = out
        return out

    def detokenize(self, tokens) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")
