"""llama.cpp's own quantizer: rewrite a GGUF's weights in another type (k-quants, f16, ...)."""

from __future__ import annotations

import os
import tempfile

import llama_cpp

from ..errors import ModelLoadError
from .model import _ensure_backend, check_gguf_file

FTYPES = {
    "f32": llama_cpp.LLAMA_FTYPE_ALL_F32,
    "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
    "bf16": llama_cpp.LLAMA_FTYPE_MOSTLY_BF16,
    "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "q4_k_s": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_S,
    "q5_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "q6_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K,
}


def quantize(src: str, dst: str, ftype: str, n_threads: int = 0, allow_requantize: bool = True) -> str:
    """Write ``src`` re-typed as ``ftype`` to ``dst`` atomically (a temporary file renamed at the end)."""
    if ftype not in FTYPES:
        raise ValueError(f"unknown type {ftype!r}; choose from {', '.join(FTYPES)}")
    check_gguf_file(src)
    _ensure_backend()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[ftype]
    params.nthread = n_threads
    params.allow_requantize = allow_requantize
    out_dir = os.path.dirname(os.path.abspath(dst))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".quantize-", suffix=".gguf", dir=out_dir)
    os.close(fd)
    try:
        rc = llama_cpp.llama_model_quantize(src.encode(), tmp.encode(), params)
        if rc != 0:
            raise ModelLoadError(f"llama.cpp could not write {ftype} from {src} (code {rc})")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst
