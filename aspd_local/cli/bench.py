"""``python -m aspd_local bench``: modes compared on a prompt file, JSON out."""

from __future__ import annotations

import json
import os
import sys
from importlib.resources import files

from ..bench.runner import load_prompts, run_bench
from ..decoding.hybrid import Mode
from .options import add_model_options, open_engine


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="compare decoding modes on a prompt file")
    add_model_options(p)
    p.add_argument("--prompts", default=None, help="JSONL rows {id, prompt, category} (default: the bundled set)")
    p.add_argument("--modes", default="ar,sequential,parallel")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    p.add_argument("--json", dest="json_out", default=None, help="write the full report here")
    p.set_defaults(func=main, max_branches=16)


def main(args) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        Mode(m)  # raises on an unknown mode
    path = args.prompts or str(files("aspd_local.resources").joinpath("bench_prompts.jsonl"))
    prompts = load_prompts(path)[: args.limit]
    engine = open_engine(args, progress=lambda m: print(m, file=sys.stderr))
    if engine.notice:
        print(f"note: {engine.notice}", file=sys.stderr)
    try:
        report = run_bench(engine, prompts, modes, args.max_tokens)
    finally:
        engine.close()
    report["prompts_file"] = os.path.basename(path)
    print(json.dumps(report["summary"], indent=2))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, ensure_ascii=False)
        print(f"report written to {args.json_out}", file=sys.stderr)
    return 0
