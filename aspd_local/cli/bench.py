"""``python -m aspd_local bench``: modes compared on a prompt file, JSON out."""

from __future__ import annotations

import json
import os
import sys
from importlib.resources import files

from ..bench.runner import LOOKUP, load_prompts, parse_modes, run_bench
from ..errors import AspdLocalError
from .options import add_model_options, open_engine


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="compare decoding modes on a prompt file")
    add_model_options(p)
    p.add_argument("--prompts", default=None, help="JSONL rows {id, prompt, category} (default: the bundled set)")
    p.add_argument("--modes", default="ar,sequential,parallel",
                   help="comma-separated: ar, sequential, parallel (plain decoding), the same with +suffix "
                        f"(SuffixDecoding), {LOOKUP} (llama-cpp-python's prompt lookup, the peer)")
    p.add_argument("--repeat-penalty", type=float, default=1.0, help="greedy decoding with this penalty (default 1)")
    p.add_argument("--lookup-tokens", type=int, default=10,
                   help=f"{LOOKUP}: draft tokens per step (llama-cpp-python's default 10)")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    p.add_argument("--json", dest="json_out", default=None, help="write the full report here")
    p.add_argument("--quality", nargs="?", const="base", default=None, metavar="REFERENCE.gguf",
                   help="also report adaptivity (share of prompts per category that open a block in parallel "
                        "mode) and quality (parallel vs ar answers: mean log-likelihood per token under the "
                        "reference model, default the base model, and ROUGE-L)")
    p.set_defaults(func=main, max_branches=16)


def main(args) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    try:
        parse_modes(modes)
    except ValueError as e:
        raise AspdLocalError(str(e)) from None
    if args.repeat_penalty <= 0:
        raise AspdLocalError("--repeat-penalty must be > 0")
    path = args.prompts or str(files("aspd_local.resources").joinpath("bench_prompts.jsonl"))
    prompts = load_prompts(path)[: args.limit]
    engine = open_engine(args, progress=lambda m: print(m, file=sys.stderr))
    if engine.notice:
        print(f"note: {engine.notice}", file=sys.stderr)
    try:
        report = run_bench(engine, prompts, modes, args.max_tokens, sampling={"repeat_penalty": args.repeat_penalty},
                           lookup_settings={"num_pred_tokens": args.lookup_tokens})
    finally:
        engine.close()
    if args.quality:
        _add_quality(report, prompts, args)
    report["prompts_file"] = os.path.basename(path)
    print(json.dumps(report["summary"], indent=2))
    if args.quality and "quality" in report:
        q = report["quality"]
        print(json.dumps({"adaptivity": {k: report["adaptivity"][k] for k in ("list_style", "serial")},
                          "quality": {"all": q["all"], "per_category": q["per_category"]}}, indent=2))
    if args.json_out:
        tmp = args.json_out + ".partial"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, ensure_ascii=False)
        os.replace(tmp, args.json_out)
        print(f"report written to {args.json_out}", file=sys.stderr)
    return 0


def _add_quality(report: dict, prompts: list[dict], args) -> None:
    from ..bench.quality import adaptivity, quality
    from ..engine import Engine
    from ..models import base_model_path

    modes = {r["mode"] for r in report["results"]}
    if "parallel" in modes:
        report["adaptivity"] = adaptivity(report["results"])
    if not {"parallel", "ar"} <= modes:
        print("note: --quality compares parallel with ar answers: run both modes", file=sys.stderr)
        return
    ref_path = str(base_model_path()) if args.quality == "base" else args.quality
    print(f"scoring answers under {os.path.basename(ref_path)} ...", file=sys.stderr)
    ref = Engine(ref_path, n_ctx=max(2048, args.n_ctx or 0), n_threads=args.threads, speculate="none",
                 suffix_cache=False)
    try:
        report["quality"] = quality(report["results"], prompts, ref, log=lambda m: print(m, file=sys.stderr))
        report["quality"]["reference"] = os.path.basename(ref_path)
    finally:
        ref.close()
