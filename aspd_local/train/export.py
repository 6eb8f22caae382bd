"""Base GGUF + delta -> a servable GGUF with the ASPD metadata (what ``setup`` builds once).

The base is read back as a float model, the delta applied (LoRA merged, control rows replaced), the
result saved as a Hugging Face directory next to the base's tokenizer, and converted by the converter.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .base import float_model_dir, load_float_model
from .delta import apply_delta, aspd_tokens_of, check_base, load_manifest

_WEIGHT_FILES = ("config.json", "generation_config.json")


def merged_hf_dir(delta_dir, base_gguf, out_dir, progress: bool = True) -> Path:
    """Write the fine-tuned float model (base + delta) as a Hugging Face directory ``out_dir``."""
    import torch

    hf = float_model_dir(base_gguf, progress=progress)
    model = load_float_model(hf, dtype=torch.float32)
    merged = apply_delta(model, delta_dir)
    out_dir = Path(out_dir)
    merged.save_pretrained(str(out_dir))
    for f in Path(hf).iterdir():  # the tokenizer, as the base directory has it
        if f.is_file() and f.name not in _WEIGHT_FILES and not f.name.startswith("model"):
            shutil.copy2(f, out_dir / f.name)
    return out_dir


def build_gguf(delta_dir, out_path, *, base_gguf=None, outtype: str = "q8_0", progress: bool = True) -> Path:
    """The servable GGUF of ``delta_dir`` at ``out_path`` (checked base, ASPD metadata from the manifest)."""
    from convert import convert_checkpoint

    from ..models import base_model_path

    base_gguf = Path(base_gguf) if base_gguf else base_model_path()
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
