"""Reading ``.safetensors`` files with numpy alone (no torch, no safetensors package).

The format: an 8-byte little-endian header length, a JSON header mapping each tensor name to its
dtype, shape and byte range in the data that follows (and an optional ``__metadata__`` entry), then
the raw little-endian data. The file is memory-mapped; a tensor is read when asked for.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from .errors import ConvertError

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "BF16": np.uint16}
_MAX_HEADER = 100 << 20


class SafetensorsFile:
    """One ``.safetensors`` file: ``keys()``, ``shape(name)`` and ``load(name)``."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read(8)
                if len(raw) < 8:
                    raise ValueError("shorter than its header")
                (n,) = struct.unpack("<Q", raw)
                if n > _MAX_HEADER:
                    raise ValueError(f"header of {n} bytes")
                header = json.loads(fh.read(n))
            size = self.path.stat().st_size
        except (OSError, ValueError) as e:
            raise ConvertError(f"cannot read {self.path}: not a safetensors file ({e})") from None
        header.pop("__metadata__", None)
        self._start = 8 + n
        self._info: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        for name, info in header.items():
            try:
                dtype, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
            except (KeyError, TypeError, ValueError):
                raise ConvertError(f"cannot read {self.path}: bad header entry for {name}") from None
            if dtype not in _DTYPES:
                raise ConvertError(f"{self.path}: tensor {name} has dtype {dtype}, which the converter cannot read")
            want = int(np.prod(shape, dtype=np.int64)) * np.dtype(_DTYPES[dtype]).itemsize
            if end - begin != want or self._start + end > size:
                raise ConvertError(f"{self.path}: tensor {name} does not fit its byte range (truncated file?)")
            self._info[name] = (dtype, shape, begin, end)
        self._map = np.memmap(self.path, dtype=np.uint8, mode="r") if self._info else None

    def keys(self) -> list[str]:
        return list(self._info)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._info[name][1]

    def raw(self, name: str) -> np.ndarray:
        """The tensor as stored (bf16 as its uint16 bit patterns)."""
        dtype, shape, begin, end = self._info[name]
        buf = self._map[self._start + begin:self._start + end]
        return buf.view(np.dtype(_DTYPES[dtype]).newbyteorder("<")).reshape(shape)

    def load(self, name: str) -> np.ndarray:
        """The tensor as an array of its own (float tensors as float32, integer and bool ones as stored)."""
        dtype = self._info[name][0]
        a = self.raw(name)
        if dtype == "BF16":
            return (a.astype(np.uint32) << 16).view(np.float32)
        if dtype.startswith("F"):
            return a.astype(np.float32)
        return a.astype(a.dtype.newbyteorder("="))


def load_file(path) -> dict[str, np.ndarray]:
    """Every tensor of ``path`` (float ones as float32)."""
    f = SafetensorsFile(path)
    return {k: f.load(k) for k in f.keys()}
