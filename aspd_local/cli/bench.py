"""``python -m aspd_local bench``: modes compared on a prompt file, JSON out."""

from __future__ import annotations

import json
import os
import sys
from importlib.resources import files

from ..bench.quality import JUDGES, adaptivity, quality, report_key
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
    p.add_argument("--judges", default="chat,fewshot",
                   help="contexts the reference model scores the answers in, comma-separated: chat (the user's "
                        "message alone), fewshot (the data pipeline's example turns first); default both")
    p.add_argument("--rescore", metavar="REPORT.json", default=None,
                   help="no generation: add the quality figures to an earlier report's answers (written back "
                        "to --json, default the same file); needs --prompts as in that run")
    p.set_defaults(func=main, max_branches=16)


def main(args) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    try:
        parse_modes(modes)
    except ValueError as e:
        raise AspdLocalError(str(e)) from None
    if args.repeat_penalty <= 0:
        raise AspdLocalError("--repeat-penalty must be > 0")
    judges = [j.strip() for j in args.judges.split(",") if j.strip()]
    unknown = [j for j in judges if j not in JUDGES]
    if unknown or not judges:
        raise AspdLocalError(f"--judges: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(JUDGES)}")
    path = args.prompts or str(files("aspd_local.resources").joinpath("bench_prompts.jsonl"))
    prompts = load_prompts(path)[: args.limit]
    if args.rescore:
        return _rescore(args, prompts, judges)
    engine = open_engine(args, progress=lambda m: print(m, file=sys.stderr))
    if engine.notice:
        print(f"note: {engine.notice}", file=sys.stderr)
    try:
        report = run_bench(engine, prompts, modes, args.max_tokens, sampling={"repeat_penalty": args.repeat_penalty},
                           lookup_settings={"num_pred_tokens": args.lookup_tokens})
    finally:
        engine.close()
    if args.quality:
        _add_quality(report, prompts, args, judges)
    report["prompts_file"] = os.path.basename(path)
    print(json.dumps(report["summary"], indent=2))
    _print_quality(report, judges)
    if args.json_out:
        _write(report, args.json_out)
    return 0


def _write(report: dict, path: str) -> None:
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2, ensure_ascii=False)
    os.replace(tmp, path)
    print(f"report written to {path}", file=sys.stderr)


def _print_quality(report: dict, judges: list[str]) -> None:
    if "adaptivity" in report:
        print(json.dumps({"adaptivity": {k: report["adaptivity"][k] for k in ("list_style", "serial")}}, indent=2))
    for j in judges:
        q = report.get(report_key(j))
        if q:
            print(json.dumps({f"quality ({j} judge)": {k: q[k] for k in ("all", "prompts_with_blocks", "no_loops")}},
                             indent=2))


def _rescore(args, prompts: list[dict], judges: list[str]) -> int:
    try:
        with open(args.rescore, encoding="utf-8") as fh:
            report = json.load(fh)
        results = report["results"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AspdLocalError(f"--rescore: {args.rescore} is not a bench report ({e})") from None
    known = {p["id"] for p in prompts}
    missing = sorted({r["id"] for r in results} - known)
    if missing:
        raise AspdLocalError(f"--rescore: {len(missing)} answers have no prompt in the prompt file "
                             f"(e.g. {missing[0]}): pass the --prompts of that run")
    args.quality = args.quality or "base"
    _add_quality(report, prompts, args, judges)
    _print_quality(report, judges)
    _write(report, args.json_out or args.rescore)
    return 0


def _add_quality(report: dict, prompts: list[dict], args, judges: list[str]) -> None:
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
        for j in judges:
            q = quality(report["results"], prompts, ref, log=lambda m: print(m, file=sys.stderr), judge=j)
            q["reference"] = os.path.basename(ref_path)
            report[report_key(j)] = q
    finally:
        ref.close()
