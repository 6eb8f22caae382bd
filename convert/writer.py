"""Write a GGUF: metadata first, then the tensors one at a time, to a temporary file renamed at the end.

f32 / f16 / bf16 / q8_0 are written here with gguf's own types and quantizers (1-D tensors such as
norms and biases stay f32, as llama.cpp expects; a q8_0 tensor whose rows do not split into blocks of
32 falls back to f16). Types only llama.cpp can produce (k-quants, q4_0, ...) are made by llama.cpp's
quantizer from an intermediate f16 file written next to the output.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, LlamaFileType
from gguf.quants import quant_shape_to_byte_shape, quantize

from aspd_local.llama.quantize import FTYPES

from .errors import ConvertError
from .progress import bar, note

Q = GGMLQuantizationType
NATIVE = {
    "f32": (Q.F32, LlamaFileType.ALL_F32),
    "f16": (Q.F16, LlamaFileType.MOSTLY_F16),
    "bf16": (Q.BF16, LlamaFileType.MOSTLY_BF16),
    "q8_0": (Q.Q8_0, LlamaFileType.MOSTLY_Q8_0),
}
OUTTYPES: tuple[str, ...] = tuple(NATIVE) + tuple(t for t in FTYPES if t not in NATIVE)


@dataclass
class Tensor:
    """One output tensor: its GGUF name, logical shape (HF order) and how to get its float32 data."""

    name: str
    shape: tuple[int, ...]
    load: Callable[[], np.ndarray]


def check_outtype(outtype: str) -> None:
    if outtype not in OUTTYPES:
        raise ConvertError(f"unknown output type {outtype!r}; choose from {', '.join(OUTTYPES)}")


def tensor_type(outtype: str, shape: tuple[int, ...]) -> GGMLQuantizationType:
    if len(shape) < 2:
        return Q.F32
    qtype = NATIVE[outtype][0]
    block = GGML_QUANT_SIZES[qtype][0]
    if shape[-1] % block:
        return Q.F16
    return qtype


def write_gguf(out_path, arch_name: str, write_kv: Callable[[GGUFWriter], None], tensors: list[Tensor],
               outtype: str, progress: bool = True) -> Path:
    """Write the GGUF atomically. ``write_kv`` adds the metadata (everything but the file type)."""
    check_outtype(outtype)
    out_path = Path(out_path)
    if out_path.is_dir():
        raise ConvertError(f"output path is a directory: {out_path}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if outtype in NATIVE:
        _write_native(out_path, arch_name, write_kv, tensors, outtype, progress)
        return out_path
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".f16.partial", dir=out_path.parent)
    os.close(fd)
    try:
        _write_native(Path(tmp), arch_name, write_kv, tensors, "f16", progress)
        from aspd_local.errors import AspdLocalError
        from aspd_local.llama.quantize import quantize as llama_quantize

        note(progress, f"quantizing to {outtype} with llama.cpp ...")
        try:
            llama_quantize(tmp, str(out_path), outtype)
        except AspdLocalError as e:
            raise ConvertError(str(e)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path


def _write_native(out_path: Path, arch_name: str, write_kv, tensors: list[Tensor], outtype: str,
                  progress: bool) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".partial", dir=out_path.parent)
    os.close(fd)
    writer = None
    try:
        writer = GGUFWriter(tmp, arch_name)
        write_kv(writer)
        writer.add_file_type(int(NATIVE[outtype][1]))
        writer.add_quantization_version(2)
        types = [tensor_type(outtype, t.shape) for t in tensors]
        for t, qtype in zip(tensors, types):
            _add_info(writer, t, qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t, qtype in bar(zip(tensors, types), progress, total=len(tensors), desc=f"writing {out_path.name}"):
            data = np.ascontiguousarray(t.load(), dtype=np.float32)
            if tuple(data.shape) != tuple(t.shape):
                raise ConvertError(f"tensor {t.name} has shape {data.shape}, expected {t.shape}")
            writer.write_tensor_data(_encode(data, qtype))
        writer.close()
        writer = None
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.unlink(tmp)


def _add_info(writer: GGUFWriter, t: Tensor, qtype: GGMLQuantizationType) -> None:
    if qtype == Q.F32:
        writer.add_tensor_info(t.name, t.shape, np.dtype(np.float32), 4 * int(np.prod(t.shape)))
    elif qtype == Q.F16:
        writer.add_tensor_info(t.name, t.shape, np.dtype(np.float16), 2 * int(np.prod(t.shape)))
    else:
        byte_shape = quant_shape_to_byte_shape(t.shape, qtype)
        writer.add_tensor_info(t.name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=qtype)


def _encode(data: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    if qtype == Q.F32:
        return data
    if qtype == Q.F16:
        return data.astype(np.float16)
    return quantize(data, qtype)
