"""``python -m aspd_local train DATA``: serial-parallel LoRA training, then the delta (adapter, control rows,
manifest) -- a thin client of ``aspd_local.train.trainer.train``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..extras import require
from ..models import cache_dir
from ..train.recipe import Recipe
from .checks import UsageError, aspd_tokens, base_or_gguf, existing_dir, existing_file, integer, number


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on serial-parallel data (LoRA + control-token rows)")
    p.add_argument("data", type=existing_file,
                   help="training rows, JSONL (messages, answer, segments), e.g. from `aspd_local data`")
    p.add_argument("--out", default=None, help="run directory: checkpoints and log (default: cache/train/<data name>)")
    p.add_argument("--delta", default=None, help="where to write the delta when training ends (default: OUT/delta)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    p.add_argument("--base", type=base_or_gguf, default=None, metavar="NAME|FILE.gguf",
                   help="base model: a registered name (aspd_local.bases: gemma3-270m, the default, or "
                        "smollm2-135m) or a GGUF file")
    p.add_argument("--aspd-tokens", type=aspd_tokens, default=None, metavar="T1,...,T6",
                   help="six existing tokens used as the ASPD tokens (default: the base's, aspd_local.bases)")
    p.add_argument("--init", type=existing_dir, default=None, metavar="DELTA",
                   help="start from this delta's adapter and control rows (e.g. to train a shipped delta further on "
                        "new rows) instead of a fresh adapter; same base and LoRA shape")
    d = Recipe()
    p.add_argument("--epochs", type=number(0, lo_open=True), default=d.epochs, metavar="N",
                   help="passes over the data (may be fractional)")
    p.add_argument("--lr", type=number(0, lo_open=True), default=d.lr, metavar="X", help="LoRA learning rate")
    p.add_argument("--rows-lr", type=number(0), default=d.rows_lr, metavar="X",
                   help="learning rate of the control-token rows")
    p.add_argument("--warmup", type=number(0, 1, hi_open=True), default=d.warmup, metavar="X",
                   help="share of steps with linear warm-up")
    p.add_argument("--grad-accum", type=integer(1), default=d.grad_accum, metavar="N",
                   help="forward passes per optimizer step")
    p.add_argument("--batch-rows", type=integer(1), default=d.batch_rows, metavar="N",
                   help="rows per forward pass")
    p.add_argument("--max-len", type=integer(1), default=d.max_len, metavar="N",
                   help="skip rows longer than this many tokens")
    p.add_argument("--parallel-repeat", type=integer(1), default=d.parallel_repeat, metavar="N",
                   help="rows with a parallel block appear this many times per epoch")
    p.add_argument("--wide-repeat", type=integer(1), default=d.wide_repeat, metavar="N",
                   help="rows with a block of at least --wide-branches branches appear N times as often again")
    p.add_argument("--wide-branches", type=integer(2), default=d.wide_branches, metavar="N",
                   help="the number of branches that makes a block wide, for --wide-repeat")
    p.add_argument("--decision-weight", type=number(0, lo_open=True), default=d.decision_weight, metavar="W",
                   help="loss weight of a block's count decisions (after each title: another title or the "
                        "branches), 1 for other tokens")
    p.add_argument("--serial-copies", action="store_true", default=d.serial_copies,
                   help="rows with a parallel block also appear once as plain serial text (same style in `ar` mode)")
    p.add_argument("--lora-r", type=integer(1), default=d.lora_r, metavar="N", help="LoRA rank")
    p.add_argument("--lora-alpha", type=integer(1), default=d.lora_alpha, metavar="N", help="LoRA alpha")
    p.add_argument("--dtype", default=d.dtype, choices=["auto", "bfloat16", "float32"],
                   help="compute type of the frozen base model; auto: bfloat16 on a GPU or a CPU with native "
                        "bfloat16, else float32")
    p.add_argument("--seed", type=integer(), default=d.seed, metavar="N", help="random seed")
    p.add_argument("--save-every", type=integer(1), default=25, metavar="N",
                   help="checkpoint every N optimizer steps")
    p.add_argument("--delta-now", action="store_true",
                   help="with --resume: write the delta of the latest checkpoint without training further (an "
                        "unfinished run; its manifest records the steps done and planned)")
    p.add_argument("--max-steps", type=integer(1), default=None, metavar="N",
                   help="stop after N more steps (resume later)")
    p.add_argument("--max-rows", type=integer(1), default=None, metavar="N", help="only the first N rows of DATA")
    p.add_argument("--threads", type=integer(1), default=None, metavar="N", help="CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=main)


def main(args) -> int:
    if args.delta_now and not args.resume:
        raise UsageError("--delta-now writes the delta of a run's latest checkpoint: add --resume (and --out RUN)")
    require("train", "train")  # one line naming the extra when its packages are missing
    # idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads slow
    # a step down by 2-7x (measured). It must be set before libgomp loads, which llama.cpp does when the
    # package is imported: aspd_local/__init__.py sets it for `train`; this is for callers of main() that
    # imported neither yet
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from .. import bases
    from ..train.trainer import train

    # a registered base by name; a GGUF file is matched to a registered base by its vocabulary (for the
    # default ASPD tokens), else Gemma's tokens as before
    named = args.base is None or args.base in bases.BASES
    spec = bases.get(args.base) if named else (bases.for_gguf(args.base) or bases.get())
    recipe = Recipe(epochs=args.epochs, lr=args.lr, rows_lr=args.rows_lr, warmup=args.warmup,
                    grad_accum=args.grad_accum, batch_rows=args.batch_rows, max_len=args.max_len,
                    parallel_repeat=args.parallel_repeat, wide_repeat=args.wide_repeat,
                    wide_branches=args.wide_branches, decision_weight=args.decision_weight,
                    serial_copies=args.serial_copies,
                    lora_r=args.lora_r, lora_alpha=args.lora_alpha, dtype=args.dtype, seed=args.seed,
                    aspd_tokens=args.aspd_tokens or spec.aspd_tokens, init=args.init or "")
    # default run directory: cache/train/<data name>, prefixed by the base unless it is the default one
    stem = Path(args.data).stem if spec.name == bases.DEFAULT_BASE else f"{spec.name}-{Path(args.data).stem}"
    out = Path(args.out) if args.out else cache_dir() / "train" / stem
    result = train(args.data, out, recipe, base=spec.name if named else None,
                   base_gguf=None if named else args.base, resume=args.resume, max_steps=args.max_steps,
                   max_rows=args.max_rows, save_every=args.save_every, delta_dir=args.delta, threads=args.threads,
                   progress=not args.quiet, delta_now=args.delta_now)
    loss = f"{result.final_loss:.4f}" if result.final_loss is not None else "-"
    print(f"steps {result.steps}, last loss {loss}, training time {result.train_seconds / 60:.1f} min", file=sys.stderr)
    if result.delta_dir is not None:
        print(str(result.delta_dir))
    else:
        print(f"not finished: continue with --resume --out {out}", file=sys.stderr)
    return 0
