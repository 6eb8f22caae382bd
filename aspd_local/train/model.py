"""The model being trained: the float base with LoRA layers (peft) and trainable control rows."""

from __future__ import annotations

import torch

from .base import TrainError, load_float_model
from .lm import AspdLM
from .recipe import Recipe, compute_dtype


def lora_config(recipe: Recipe):
    from peft import LoraConfig

    return LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                      target_modules=list(recipe.lora_targets), bias="none")


def build_trainable(hf_dir, recipe: Recipe, control_ids, model=None) -> tuple[AspdLM, object]:
    """(the ASPD training wrapper, the peft model holding the adapter). ``model`` may be given already loaded."""
    from peft import get_peft_model

    dtype = getattr(torch, compute_dtype(recipe.dtype), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TrainError(f"unknown compute dtype {recipe.dtype!r} (use auto, bfloat16 or float32)")
    base = model if model is not None else load_float_model(hf_dir, dtype=dtype)
    base = base.to(dtype)
    try:
        peft_model = get_peft_model(base, lora_config(recipe))
    except ValueError as e:
        raise TrainError(f"cannot put LoRA on this model: {e}") from None
    for name, p in peft_model.named_parameters():
        if "lora_" in name:
            p.data = p.data.float()  # float32 masters for the adapter
    lm = AspdLM(peft_model.base_model.model, control_ids)
    return lm, peft_model


def trainable_tensors(lm: AspdLM) -> dict[str, torch.Tensor]:
    return {n: p for n, p in lm.named_parameters() if p.requires_grad}
