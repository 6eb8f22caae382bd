"""Checkpoints of a training run: trainable tensors, optimizer and scheduler state, the step reached.

Each checkpoint is a directory ``checkpoints/step-NNNNNN`` written under a temporary name and renamed,
so a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

STATE = "state.json"
TENSORS = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"


def checkpoint_dir(run_dir, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:06d}"


def save_checkpoint(run_dir, step: int, tensors: dict[str, torch.Tensor], optimizer_state: dict,
                    meta: dict, keep: int = 2) -> Path:
    final = checkpoint_dir(run_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / TENSORS))
        torch.save(optimizer_state, tmp / OPTIMIZER)
        (tmp / STATE).write_text(json.dumps({**meta, "step": step}, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith("step-") and (p / STATE).exists())


def latest_checkpoint(run_dir) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(path) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(meta, trainable tensors, optimizer state) of a checkpoint directory."""
    path = Path(path)
    meta = json.loads((path / STATE).read_text())
    tensors = load_file(str(path / TENSORS))
    opt = torch.load(path / OPTIMIZER, weights_only=False)
    return meta, tensors, opt
