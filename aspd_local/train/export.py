"""Base GGUF + delta -> a servable GGUF with the ASPD metadata (what ``setup`` builds once).

Two ways, giving the same weights (byte for byte at q8_0 for the shipped delta, tests/test_build_numpy.py):
- ``via="numpy"`` (the default; ``aspd_local.build``): the base GGUF's tensors dequantized with gguf-py,
  the LoRA merged and the control rows replaced in numpy, the base's metadata kept; no torch needed.
- ``via="transformers"``: the base read back as a float model by transformers, the delta applied with
  peft (LoRA merged, control rows replaced), the result saved as a Hugging Face directory next to the
  base's tokenizer, and converted by the converter (whose vocabulary is the one transformers rebuilds
  from the GGUF: the same tokens, other scores, whitespace runs as normal pieces).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

_WEIGHT_FILES = ("config.json", "generation_config.json")


def merged_hf_dir(delta_dir, base_gguf, out_dir, progress: bool = True) -> Path:
    """Write the fine-tuned float model (base + delta) as a Hugging Face directory ``out_dir``."""
    import torch

    from .base import float_model_dir, load_float_model
    from .delta import apply_delta

    hf = float_model_dir(base_gguf, progress=progress)
    model = load_float_model(hf, dtype=torch.float32)
    merged = apply_delta(model, delta_dir)
    out_dir = Path(out_dir)
    merged.save_pretrained(str(out_dir))
    for f in Path(hf).iterdir():  # the tokenizer, as the base directory has it
        if f.is_file() and f.name not in _WEIGHT_FILES and not f.name.startswith("model"):
            shutil.copy2(f, out_dir / f.name)
    return out_dir


VIAS = ("numpy", "transformers")


def build_gguf(delta_dir, out_path, *, base_gguf=None, outtype: str = "q8_0", progress: bool = True,
               via: str = "numpy") -> Path:
    """The servable GGUF of ``delta_dir`` at ``out_path`` (checked base, ASPD metadata from the manifest),
    made ``via`` numpy (torch-free, the default) or transformers (needs torch, transformers and peft)."""
    if via == "numpy":
        from ..build import build_gguf as build_numpy

        return build_numpy(delta_dir, out_path, base_gguf=base_gguf, outtype=outtype, progress=progress)
    if via != "transformers":
        raise ValueError(f"unknown build path {via!r}; choose from {', '.join(VIAS)}")
    from convert import convert_checkpoint

    from ..models import base_model_path
    from ..build import aspd_tokens_of, check_base, load_manifest

    if not base_gguf:  # the registered base the delta was trained on (aspd_local.bases)
        from .. import bases

        spec = bases.for_manifest(load_manifest(delta_dir))
        base_gguf = base_model_path(base=spec.name if spec else None)
    base_gguf = Path(base_gguf)
    check_base(delta_dir, base_gguf)
    sep = load_manifest(delta_dir)["aspd"].get("title_separator", ": ")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".merge.", dir=out_path.parent))
    try:
        merged_hf_dir(delta_dir, base_gguf, work / "hf", progress)
        return convert_checkpoint(work / "hf", out_path, outtype, aspd_tokens=aspd_tokens_of(delta_dir),
                                  title_separator=sep, progress=progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
