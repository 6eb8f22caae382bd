"""``python -m aspd_local data prompts|answers|build``: the ASPD training-data pipeline (issue 4)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    from ..data import paths

    p = sub.add_parser("data", help="build ASPD training data from the base model's own answers")
    p.add_argument("--dir", default=str(paths.DATA_DIR), help=f"data directory (default: {paths.DATA_DIR})")
    stages = p.add_subparsers(dest="stage", required=True)

    s = stages.add_parser("prompts", help="write the training and evaluation prompt sets")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--n-train", type=int, default=400)
    s.add_argument("--extra", type=int, default=0,
                   help="also write N more list-style training prompts (not in the training or evaluation set) "
                        "to DIR/prompts_train_extra.jsonl")
    s.set_defaults(func=run_prompts)

    s = stages.add_parser("answers", help="answer the training prompts with the base model (resumable)")
    s.add_argument("--model", default=None, help="GGUF of the base model (default: Gemma 3 270M from PyPI)")
    s.add_argument("--prompts", default=None, help="prompt file (default: DIR/prompts_train.jsonl)")
    s.add_argument("--out", default=None, help="answer file (default: DIR/answers.jsonl)")
    s.add_argument("--max-tokens", type=int, default=256)
    s.add_argument("--limit", type=int, default=None, help="answer at most N more prompts")
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=run_answers)

    s = stages.add_parser("build", help="extract, validate and write train.jsonl, stats.json and report.md")
    s.add_argument("--model", default=None, help="GGUF used to measure branch independence (default: base)")
    s.add_argument("--answers", default=None, help="answer file (default: DIR/answers.jsonl)")
    s.add_argument("--threshold", type=float, default=None,
                   help="nats/token a branch may gain from seeing its siblings before it counts as dependent")
    s.add_argument("--no-independence", action="store_true", help="skip the model-based independence check")
    s.add_argument("--keep-serial-list-answers", action="store_true",
                   help="keep list-style prompts that the base model answered without structure, as serial rows "
                        "(default: dropped; serial rows come from the serial prompt categories)")
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=run_build)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _engine(args):
    from ..engine import Engine
    from ..models import base_model_path

    path = args.model or str(base_model_path(_progress))
    return Engine(path, n_ctx=2048, n_threads=args.threads, max_branches=2, max_draft_paths=1, speculate="none",
                  suffix_cache=False)


def run_prompts(args) -> int:
    from ..data import paths
    from ..data.jsonl import write_jsonl
    from ..data.prompts import build_prompt_sets

    train, evals = build_prompt_sets(seed=args.seed, n_train=args.n_train)
    d = Path(args.dir)
    write_jsonl(d / paths.TRAIN_PROMPTS, train)
    write_jsonl(d / paths.EVAL_PROMPTS, evals)
    _progress(f"{len(train)} training prompts -> {d / paths.TRAIN_PROMPTS}")
    _progress(f"{len(evals)} evaluation prompts -> {d / paths.EVAL_PROMPTS}")
    if args.extra:
        from ..data.prompts import extra_prompts

        extra = extra_prompts(train, args.extra, seed=args.seed)
        write_jsonl(d / paths.EXTRA_PROMPTS, extra)
        _progress(f"{len(extra)} extra training prompts -> {d / paths.EXTRA_PROMPTS}")
    return 0


def run_answers(args) -> int:
    from ..data import paths
    from ..data.answers import AnswerSettings, generate_answers
    from ..data.jsonl import read_jsonl

    d = Path(args.dir)
    prompts = read_jsonl(args.prompts or d / paths.TRAIN_PROMPTS, required=("id", "prompt", "category"))
    engine = _engine(args)
    try:
        res = generate_answers(engine, prompts, args.out or d / paths.ANSWERS,
                               AnswerSettings(max_tokens=args.max_tokens), limit=args.limit, log=_progress)
    finally:
        engine.close()
    _progress(f"answers: {res}")
    return 0


def run_build(args) -> int:
    from ..data import paths
    from ..data.build import BuildSettings, build_dataset
    from ..data.jsonl import DataFileError

    d = Path(args.dir)
    answers = Path(args.answers or d / paths.ANSWERS)
    if not answers.exists():
        raise DataFileError(f"{answers} does not exist (run `python -m aspd_local data answers` first)")
    settings = BuildSettings()
    settings.serial_rows_from_list_prompts = args.keep_serial_list_answers
    if args.threshold is not None:
        settings.independence_threshold = args.threshold
    engine = None if args.no_independence else _engine(args)
    try:
        stats = build_dataset(answers, d, engine, settings, log=_progress)
    finally:
        if engine is not None:
            engine.close()
    _progress(f"{stats['rows']} rows ({stats['parallel_rows']} parallel) -> {d / paths.TRAIN}")
    return 0


def main(argv=None) -> int:  # pragma: no cover - for running this module alone
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    return args.func(args)
