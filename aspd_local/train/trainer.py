"""The training loop: LoRA + control rows, loss on generated answer tokens, AdamW with warm-up and
cosine decay, gradient accumulation, checkpoints every N steps, exact resume, seeded.

    from aspd_local.train.trainer import train
    result = train("train.jsonl", "runs/r1", Recipe(epochs=2), delta_dir="models/aspd-gemma3-270m/delta")
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..aspd.encode import RowEncoder
from ..aspd.tokens import AspdTokens
from .base import TrainError, float_model_dir
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .data import TrainSet, load_train_set, rows_digest
from .mask import collate
from .model import build_trainable, trainable_tensors
from .recipe import Recipe, compute_dtype

LOG = "log.jsonl"


@dataclass
class TrainResult:
    steps: int
    final_loss: float | None
    train_seconds: float
    run_dir: Path
    delta_dir: Path | None


def widest_block(tokens: list[int], ids: AspdTokens) -> int:
    """Branches of the row's widest parallel block (0: a serial row)."""
    widest = branches = 0
    for t in tokens:
        if t == ids.para_open:
            branches = 0
        elif t == ids.branch_open:
            branches += 1
            widest = max(widest, branches)
    return widest


def row_repeats(width: int, recipe: Recipe) -> int:
    """Times per epoch a row whose widest block has ``width`` branches appears."""
    if width == 0:
        return 1
    return recipe.parallel_repeat * (recipe.wide_repeat if width >= recipe.wide_branches else 1)


def plan_steps(lengths: list[int], recipe: Recipe, widths: list[int] | None = None) -> list[list[list[int]]]:
    """The whole run, fixed by the seed: optimizer steps -> micro-batches -> row indices.

    Each epoch is a fresh permutation of the rows, where a row comes :func:`row_repeats` times for the
    width of its widest block (``widths``; none given: every row once); with ``batch_rows > 1`` rows of
    similar length share a batch.
    """
    pool = [i for i in range(len(lengths)) for _ in range(row_repeats(widths[i] if widths else 0, recipe))]
    n = len(pool)
    rng = np.random.default_rng(recipe.seed)
    total = max(1, round(recipe.epochs * n / recipe.batch_rows))
    micro: list[list[int]] = []
    while len(micro) < total:
        perm = [pool[int(i)] for i in rng.permutation(n)]
        if recipe.batch_rows > 1:
            window = 16 * recipe.batch_rows
            perm = [i for s in range(0, n, window) for i in sorted(perm[s:s + window], key=lambda i: lengths[i])]
            chunks = [perm[s:s + recipe.batch_rows] for s in range(0, n, recipe.batch_rows)]
            rng.shuffle(chunks)
            micro += chunks
        else:
            micro += [[i] for i in perm]
    micro = micro[:total]
    return [micro[s:s + recipe.grad_accum] for s in range(0, len(micro), recipe.grad_accum)]


def lr_factor(step: int, total: int, recipe: Recipe) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based)."""
    warm = max(1, round(recipe.warmup * total))
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, train_set: TrainSet, hf_dir, ids: AspdTokens, recipe: Recipe, run_dir, *,
                 save_every: int = 25, progress: bool = True, meta: dict | None = None, model=None,
                 base_sha256: str | None = None):
        recipe = dataclasses.replace(recipe, dtype=compute_dtype(recipe.dtype))
        self.data, self.ids, self.recipe = train_set, ids, recipe
        self.run_dir = Path(run_dir)
        self.save_every = save_every
        self.progress = progress
        self.meta = dict(meta or {})
        seed_everything(recipe.seed)
        self.lm, self.peft_model = build_trainable(hf_dir, recipe, ids.ids, model=model)
        if recipe.init:
            from .delta import load_delta_weights

            load_delta_weights(self.peft_model, self.lm, recipe.init, ids, base_sha256=base_sha256, recipe=recipe)
        self.dtype = getattr(torch, recipe.dtype)
        self.pad_id = int(getattr(self.lm.model.config, "pad_token_id", None) or 0)
        widths = [widest_block(r.tokens[r.n_prompt:], ids) for r in train_set.rows]
        self.plan = plan_steps([len(r.tokens) for r in train_set.rows], recipe, widths)
        self.params = trainable_tensors(self.lm)
        rows = [p for n, p in self.params.items() if n == "rows"]
        lora = [p for n, p in self.params.items() if n != "rows"]
        self.optimizer = torch.optim.AdamW(
            [{"params": lora, "lr": recipe.lr, "weight_decay": recipe.weight_decay},
             {"params": rows, "lr": recipe.rows_lr, "weight_decay": 0.0}], betas=(0.9, 0.999), eps=1e-8)
        self.base_lrs = [recipe.lr, recipe.rows_lr]
        self.step = 0
        self.digest = rows_digest(train_set.rows)

    @property
    def total_steps(self) -> int:
        return len(self.plan)

    # -- checkpoints ------------------------------------------------------------
    def _identity(self) -> dict:
        return {"recipe": self.recipe.fingerprint(), "data_digest": self.digest}

    def save(self) -> Path:
        meta = {**self._identity(), "torch_rng": torch.get_rng_state().tolist()}
        return save_checkpoint(self.run_dir, self.step, self.params, self.optimizer.state_dict(), meta)

    def resume(self) -> bool:
        """Continue from the latest checkpoint of the run directory; False when there is none."""
        path = latest_checkpoint(self.run_dir)
        if path is None:
            return False
        meta, tensors, opt = load_checkpoint(path)
        want = self._identity()
        if meta.get("data_digest") != want["data_digest"]:
            raise TrainError(f"{path}: the checkpoint was trained on different data (digest "
                             f"{meta.get('data_digest')} vs {want['data_digest']}); use a new run directory")
        # read through Recipe, so a checkpoint from before a field existed has that field's default
        have = Recipe.from_dict(meta.get("recipe", {})).fingerprint()
        if have != want["recipe"]:
            changed = sorted(k for k in want["recipe"] if have.get(k) != want["recipe"][k])
            raise TrainError(f"{path}: the checkpoint used another recipe (changed: {', '.join(changed)})")
        missing = set(self.params) - set(tensors)
        if missing:
            raise TrainError(f"{path}: checkpoint lacks {len(missing)} trainable tensors")
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(tensors[n].to(p.dtype))
        self.optimizer.load_state_dict(opt)
        torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))
        self.step = int(meta["step"])
        return True

    # -- the loop ---------------------------------------------------------------
    def _set_lr(self) -> float:
        f = lr_factor(self.step, self.total_steps, self.recipe)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f
        return self.optimizer.param_groups[0]["lr"]

    def train_step(self) -> dict:
        """One optimizer step over its micro-batches; returns its log record."""
        t0 = time.perf_counter()
        rows = self.data.rows
        micro = self.plan[self.step]
        batches = [collate([rows[i] for i in mb], self.ids, pad_id=self.pad_id, dtype=self.dtype,
                           sliding_window=self.lm.sliding_window, decision_weight=self.recipe.decision_weight)
                   for mb in micro]
        n_targets = sum(b.n_targets for b in batches)
        lr = self._set_lr()
        self.lm.train()
        total = 0.0
        for b in batches:
            loss_sum, _ = self.lm.loss_sum(b, self.recipe.loss_chunk)
            (loss_sum / max(1, n_targets)).backward()
            total += float(loss_sum.detach())
        grad_norm = torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.recipe.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {"step": self.step, "loss": round(total / max(1, n_targets), 5), "lr": lr,
                "grad_norm": round(float(grad_norm), 4), "tokens": int(sum(b.input_ids.numel() for b in batches)),
                "targets": n_targets, "seconds": round(time.perf_counter() - t0, 3)}

    def run(self, max_steps: int | None = None, on_step=None) -> int:
        """Train until the plan ends (or ``max_steps`` more steps); checkpoints on the way and at the end."""
        end = self.total_steps if max_steps is None else min(self.total_steps, self.step + max_steps)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", file=sys.stderr,
                       dynamic_ncols=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.run_dir / LOG
        recent: list[float] = []
        try:
            while self.step < end:
                rec = self.train_step()
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec) + "\n")
                recent = (recent + [rec["loss"]])[-10:]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", avg10=f"{sum(recent) / len(recent):.3f}",
                                    s_step=f"{rec['seconds']:.1f}")
                if on_step is not None:
                    on_step(rec)
                if self.step % self.save_every == 0 or self.step == end:
                    self.save()
        finally:
            if bar is not None:
                bar.close()
        return self.step


def read_log(run_dir) -> list[dict]:
    """The run's step records (the last record of each step, for runs resumed after a crash)."""
    path = Path(run_dir) / LOG
    if not path.exists():
        return []
    by_step: dict[int, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        by_step[int(rec["step"])] = rec
    return [by_step[k] for k in sorted(by_step)]


def make_encoder(base_gguf, aspd_tokens: str):
    """llama.cpp's tokenizer and chat template of the base GGUF, as the engine uses them."""
    from ..chat import ChatFormat
    from ..llama.model import Model, ModelParams

    model = Model(str(base_gguf), ModelParams(n_gpu_layers=0))
    ids = AspdTokens.from_mapping(aspd_tokens, model.find_token)
    ids.validate_against(model.n_vocab)
    return RowEncoder(model, ids, ChatFormat(model)), ids


def train(data_path, run_dir, recipe: Recipe | None = None, *, base: str | None = None, base_gguf=None,
          resume: bool = False,
          max_steps: int | None = None, max_rows: int | None = None, save_every: int = 25,
          delta_dir=None, threads: int | None = None, progress: bool = True, delta_now: bool = False) -> TrainResult:
    """Train on a JSONL file of rows (see aspd_local.aspd.encode) and, when the plan is complete, write the
    delta (adapter, control rows, manifest) to ``delta_dir`` (default ``run_dir/delta``). ``delta_now``
    (with ``resume``): write the delta of the latest checkpoint without training further; its manifest
    records the steps done and planned.

    The base model: ``base_gguf`` (a GGUF file), else the registered base ``base`` (``aspd_local.bases``,
    default Gemma 3 270M). ``recipe.aspd_tokens`` must name six tokens of its vocabulary."""
    from ..models import base_model_path
    from .delta import base_info, save_delta

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    recipe = recipe or Recipe()
    if not base_gguf:  # a registered base: its own ASPD tokens unless the recipe names others
        from .. import bases
        from .recipe import DEFAULT_ASPD_TOKENS

        spec = bases.get(base)
        if recipe.aspd_tokens == DEFAULT_ASPD_TOKENS and spec.aspd_tokens != DEFAULT_ASPD_TOKENS:
            recipe = dataclasses.replace(recipe, aspd_tokens=spec.aspd_tokens)
    torch.set_num_threads(threads or min(2, os.cpu_count() or 1))
    run_dir = Path(run_dir)
    if not resume and latest_checkpoint(run_dir) is not None:
        raise TrainError(f"{run_dir} already holds checkpoints: pass --resume to continue, or use a new directory")
    note = (lambda m: print(f"[train] {m}", file=sys.stderr, flush=True)) if progress else (lambda m: None)
    base_gguf = Path(base_gguf) if base_gguf else base_model_path(progress=note, base=base)
    t_prep = time.perf_counter()
    encoder, ids = make_encoder(base_gguf, recipe.aspd_tokens)
    data = load_train_set(data_path, encoder, recipe.max_len, max_rows, serial_copies=recipe.serial_copies)
    note(f"{data.stats['rows']} rows ({data.stats['rows_parallel']} with parallel blocks), "
         f"{data.stats['tokens']} tokens, {data.stats['loss_tokens']} with loss; skipped {data.stats['skipped']}")
    hf_dir = float_model_dir(base_gguf, progress=progress)
    base_meta = base_info(base_gguf)
    trainer = Trainer(data, hf_dir, ids, recipe, run_dir, save_every=save_every, progress=progress,
                      base_sha256=base_meta["sha256"])
    prep_s = time.perf_counter() - t_prep
    if resume and trainer.resume():
        note(f"resumed at step {trainer.step} of {trainer.total_steps}")
    elif delta_now:
        raise TrainError(f"{run_dir} holds no checkpoint to write a delta from (--delta-now goes with --resume)")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / LOG).unlink(missing_ok=True)
        note(f"{trainer.total_steps} optimizer steps ({recipe.epochs} epochs, {recipe.grad_accum} x "
             f"{recipe.batch_rows} rows per step)")
    if not delta_now:
        trainer.run(max_steps)
    log = read_log(run_dir)
    train_s = sum(r["seconds"] for r in log)
    done = delta_now or trainer.step >= trainer.total_steps
    out = None
    if done:
        out = Path(delta_dir) if delta_dir else run_dir / "delta"
        save_delta(trainer.peft_model, trainer.lm, ids, out, base=base_meta, recipe=trainer.recipe,
                   data_stats=data.stats, log=log, timings={"prepare_s": round(prep_s, 1),
                                                            "train_s": round(train_s, 1)},
                   steps={"done": trainer.step, "planned": trainer.total_steps})
        note(f"delta written to {out}" + ("" if trainer.step >= trainer.total_steps else
                                          f" (step {trainer.step} of {trainer.total_steps})"))
    final = log[-1]["loss"] if log else None
    return TrainResult(trainer.step, final, train_s, run_dir, out)
