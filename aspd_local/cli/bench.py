"""``python -m aspd_local bench``: modes compared on a prompt file, JSON out."""

from __future__ import annotations

import json
import os
import sys
from importlib.resources import files

from ..bench.checks import headline, objective_checks
from ..bench.quality import JUDGES, adaptivity, quality, report_key
from ..bench.runner import LOOKUP, load_prompts, run_bench
from ..errors import AspdLocalError
from ..params import GenerationParams
from .checks import bench_modes, existing_file, gguf_file, integer, name_list, number, output_file
from .options import add_model_options, open_engine


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="compare decoding modes on a prompt file")
    add_model_options(p)
    p.add_argument("--prompts", type=existing_file, default=None, metavar="FILE.jsonl",
                   help="JSONL rows {id, prompt, category} (default: the bundled set)")
    p.add_argument("--modes", type=bench_modes, default="ar,sequential,parallel",
                   help="comma-separated: ar, sequential, parallel (plain decoding), the same with +suffix "
                        f"(SuffixDecoding), {LOOKUP} (llama-cpp-python's prompt lookup, the peer)")
    p.add_argument("--repeat-penalty", type=number(0, lo_open=True), default=GenerationParams().repeat_penalty,
                   metavar="X", help="greedy decoding with this penalty")
    p.add_argument("--lookup-tokens", type=integer(1), default=10, metavar="N",
                   help=f"{LOOKUP}: draft tokens per step (llama-cpp-python's default)")
    p.add_argument("--max-tokens", type=integer(1), default=256, metavar="N", help="most tokens of an answer")
    p.add_argument("--limit", type=integer(1), default=None, metavar="N", help="only the first N prompts")
    p.add_argument("--json", dest="json_out", type=output_file, default=None, metavar="OUT.json",
                   help="write the full report here")
    p.add_argument("--quality", nargs="?", type=_reference, const="base", default=None, metavar="REFERENCE.gguf",
                   help="also report objective checks per mode and category (count fidelity, duplicate items, "
                        "loops, runaway answers, distinct-2, length), adaptivity (share of prompts per category "
                        "that open a block in parallel mode) and the likelihood judges (parallel vs ar answers: "
                        "mean log-likelihood per token under the reference model, default the base model, and "
                        "ROUGE-L)")
    p.add_argument("--judges", type=_judges, default=None,
                   help="contexts the reference model scores the answers in, comma-separated: chat (the user's "
                        "message alone), fewshot (the data pipeline's example turns first), or none (the objective "
                        "checks alone); default: the base's (aspd_local.bases: both for gemma3-270m, chat for "
                        "smollm2-135m)")
    p.add_argument("--rescore", type=existing_file, metavar="REPORT.json", default=None,
                   help="no generation: add the quality figures to an earlier report's answers (written back "
                        "to --json, default the same file); needs --prompts as in that run")
    p.set_defaults(func=main, max_branches=16)


def _judges(text: str) -> list[str]:
    """--judges: ``none`` (no likelihood judge) or names out of JUDGES."""
    return [] if text.strip() == "none" else name_list(JUDGES)(text)


def _reference(text: str) -> str:
    """--quality's model: ``base`` or a GGUF file."""
    return text if text == "base" else gguf_file(text)


def main(args) -> int:
    from ..bases import get

    modes = args.modes  # checked list
    judges = list(get(args.base).judges) if args.judges is None else args.judges
    path = args.prompts or str(files("aspd_local.resources").joinpath("bench_prompts.jsonl"))
    try:
        prompts = load_prompts(path)[: args.limit]
    except OSError as e:
        raise AspdLocalError(f"cannot read prompts {path}: {e.strerror}") from None
    except (ValueError, TypeError) as e:  # a malformed file: which line, and why
        raise AspdLocalError(str(e)) from None
    if not prompts:
        raise AspdLocalError(f"{path}: no prompts")
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
    report["prompts_file"] = os.path.basename(path)
    if args.quality:
        _add_checks(report, prompts)
        if args.json_out:  # the answers and their checks are kept if the judges (minutes) are stopped
            _write(report, args.json_out, quiet=True)
        _add_judges(report, prompts, args, judges)
    print(json.dumps(report["summary"], indent=2))
    _print_quality(report, judges)
    if args.json_out:
        _write(report, args.json_out)
    return 0


def _write(report: dict, path: str, quiet: bool = False) -> None:
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2, ensure_ascii=False)
    os.replace(tmp, path)
    if not quiet:
        print(f"report written to {path}", file=sys.stderr)


def _print_quality(report: dict, judges: list[str]) -> None:
    if "checks_headline" in report:
        print(json.dumps({"objective checks (list-style count fidelity; share of all answers with duplicate "
                          "items, loops, runaway)": report["checks_headline"]}, indent=2))
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
    _add_checks(report, prompts)
    _add_judges(report, prompts, args, judges)
    _print_quality(report, judges)
    _write(report, args.json_out or args.rescore)
    return 0


def _add_checks(report: dict, prompts: list[dict]) -> None:
    """The objective checks: what anyone can count in the answers (module aspd_local.bench.checks)."""
    report["checks"] = objective_checks(report["results"], prompts)
    report["checks_headline"] = headline(report["checks"])
    if "parallel" in {r["mode"] for r in report["results"]}:
        report["adaptivity"] = adaptivity(report["results"])


def _add_judges(report: dict, prompts: list[dict], args, judges: list[str]) -> None:
    """The likelihood judges: parallel answers against ar ones under the reference model."""
    from ..engine import Engine
    from ..models import base_model_path

    if not judges:
        return
    modes = {r["mode"] for r in report["results"]}
    if not {"parallel", "ar"} <= modes:
        print("note: --quality compares parallel with ar answers: run both modes", file=sys.stderr)
        return
    ref_path = str(base_model_path(base=args.base)) if args.quality == "base" else args.quality
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
