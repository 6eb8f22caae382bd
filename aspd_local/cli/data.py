"""``python -m aspd_local data prompts|answers|build``: the ASPD training-data pipeline (issue 4)."""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from ..bases import BASES, DEFAULT_BASE, get
from .checks import CliParser, UsageError, base_name, existing_file, gguf_file, integer, number


def add_parser(sub) -> None:
    from ..data.prompts import build_prompt_sets

    defaults = {k: v.default for k, v in inspect.signature(build_prompt_sets).parameters.items()}
    p = sub.add_parser("data", help="build ASPD training data from the base model's own answers")
    _base_option(p)
    stages = p.add_subparsers(dest="stage", required=True)

    s = stages.add_parser("prompts", help="write the training and evaluation prompt sets")
    s.add_argument("--seed", type=integer(), default=defaults["seed"], metavar="N", help="random seed")
    s.add_argument("--n-train", type=integer(1), default=defaults["n_train"], metavar="N",
                   help="training prompts")
    s.add_argument("--extra", type=integer(0), default=0, metavar="N",
                   help="also write N more list-style training prompts (not in the training or evaluation set) "
                        "to DIR/prompts_train_extra.jsonl")
    s.add_argument("--more", type=integer(0), default=2000, metavar="N",
                   help="also write N more training prompts (many phrasings, counts 2..7, a fifth serial) to "
                        "DIR/prompts_train_more.jsonl (0: none; default: %(default)s)")
    s.add_argument("--parts", type=integer(0), default=0, metavar="N",
                   help="also write N multi-part prompts composed of a frame and 2 to 4 generic parts to "
                        "DIR/prompts_train_parts.jsonl, answered by `data answers --by-parts` (default: none)")
    s.add_argument("--serial-lists", type=integer(0), default=0, metavar="N",
                   help="also write N serial prompts that look like lists (\"How do I X? Just a sentence, please.\") "
                        "to DIR/prompts_train_serial.jsonl (default: none)")
    s.add_argument("--paired-lists", action="store_true",
                   help="also write, for each prompt of DIR/prompts_train_serial.jsonl, a list-style prompt on the same "
                        "topic that asks for no number (\"How do I X?\") to DIR/prompts_train_paired.jsonl")
    s.add_argument("--independent", type=existing_file, default=None, metavar="PATH",
                   help="prompts never to train on: those identical or close (token Jaccard >= 0.8) to one are "
                        "dropped (default: benchmarks/independent_prompts.jsonl, _2 and _3, those that exist)")
    _base_option(s, argparse.SUPPRESS)
    s.set_defaults(func=run_prompts)

    s = stages.add_parser("answers", help="answer the training prompts with the base model (resumable)")
    s.add_argument("--model", type=gguf_file, default=None,
                   help="GGUF of the base model (default: --base's, from its PyPI package)")
    s.add_argument("--prompts", type=existing_file, nargs="+", default=None,
                   help="prompt file(s) (default: every DIR/prompts_train*.jsonl that exists: train, extra, more; "
                        "with --by-parts also parts)")
    s.add_argument("--out", default=None, help="answer file (default: DIR/answers.jsonl)")
    s.add_argument("--max-tokens", type=integer(1), default=None, metavar="N",
                   help="most tokens of an answer (default: the base's, aspd_local.bases: "
                        + ", ".join(f"{b.name} {b.answer_tokens}" for b in BASES.values()) + ")")
    s.add_argument("--limit", type=integer(1), default=None, metavar="N", help="answer at most N more prompts")
    s.add_argument("--threads", type=integer(1), default=None, metavar="N", help="CPU threads (default: all cores)")
    s.add_argument("--concurrency", type=integer(1), default=4, metavar="N",
                   help="requests in flight at once (default: %(default)s)")
    s.add_argument("--fewshot", choices=("v1", "counted", "none"), default=None,
                   help="example turns (default: the base's, aspd_local.bases; none: the user's message alone)")
    s.add_argument("--count-retry", action="store_true",
                   help="try again (repetition penalty 1.1) an answer whose number of items differs from the number "
                        "asked (off: measured, it costs more than it gains)")
    s.add_argument("--by-parts", action="store_true",
                   help="answer the multi-part prompts (of the fixed templates, and the composed ones of "
                        "DIR/prompts_train_parts.jsonl) part by part, each part's own question alone, into "
                        "DIR/answers_parts.jsonl (aspd_local.data.parts); `data build` puts them in place of the "
                        "whole answers")
    s.add_argument("--finish-lists", action="store_true",
                   help="finish the short lists of DIR/answers.jsonl (fewer items than asked) item by item, into "
                        "DIR/answers_lists.jsonl (aspd_local.data.lists); `data build` puts them in place of the "
                        "short answers")
    _base_option(s, argparse.SUPPRESS)
    s.set_defaults(func=run_answers)

    s = stages.add_parser("build", help="extract, validate and write train.jsonl, stats.json and report.md")
    s.add_argument("--model", type=gguf_file, default=None,
                   help="GGUF used to measure branch independence (default: base)")
    s.add_argument("--answers", type=existing_file, nargs="+", default=None,
                   help="answer file(s), a later file's row replacing an earlier one's of the same id (default: "
                        "DIR/answers.jsonl, then DIR/answers_parts.jsonl if it exists)")
    s.add_argument("--threshold", type=number(), default=None, metavar="X",
                   help="nats/token a branch may gain from seeing its siblings before it counts as dependent "
                        "(default: aspd_local.data.build.DEFAULT_INDEPENDENCE_THRESHOLD)")
    s.add_argument("--no-independence", action="store_true", help="skip the model-based independence check")
    s.add_argument("--keep-serial-list-answers", action="store_true",
                   help="keep list-style prompts that the base model answered without structure, as serial rows "
                        "(default: dropped; serial rows come from the serial prompt categories)")
    s.add_argument("--no-filters", action="store_true",
                   help="skip the count, duplicate-item and title filters (issue 13)")
    s.add_argument("--independent", type=existing_file, default=None, metavar="PATH",
                   help="prompts never to train on (default: benchmarks/independent_prompts.jsonl, _2 and _3, those that exist)")
    s.add_argument("--threads", type=integer(1), default=None, metavar="N", help="CPU threads (default: all cores)")
    _base_option(s, argparse.SUPPRESS)
    s.set_defaults(func=run_build)


def _base_option(p, default=None) -> None:
    """``--base`` and ``--dir``, before or after the stage (``data --base B answers`` or ``data answers
    --base B``): the stage's own options default to SUPPRESS so that they do not undo the outer ones."""
    p.add_argument("--dir", default=default, help="data directory (default: models/aspd-<base>/data)")
    p.add_argument("--base", type=base_name, default=default if default is not None else DEFAULT_BASE,
                   metavar="NAME", help="base model (aspd_local.bases): its GGUF answers and measures, and its "
                                        f"data directory is the default --dir (default: {DEFAULT_BASE})")


def _data_dir(args) -> Path:
    return Path(args.dir) if args.dir else get(args.base).data_dir


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _engine(args, n_slots: int = 1, per_slot: int = 512):
    from ..engine import Engine
    from ..models import base_model_path

    path = args.model or str(base_model_path(_progress, base=args.base))
    # the example turns (about 700 tokens) are cached once and shared; each slot needs its question and answer
    # (``per_slot`` tokens; an answer being finished item by item is submitted again whole for every item)
    return Engine(path, n_ctx=max(2048, 1024 + per_slot * n_slots), n_threads=args.threads, max_branches=2,
                  max_draft_paths=1, speculate="none", suffix_cache=False, n_slots=max(1, n_slots))


def _prompt_rows(d: Path, files=None, by_parts: bool = True) -> list[dict]:
    """The rows of ``files``, else of every training prompt file in DIR (``by_parts``: with the composed
    multi-part prompts, which are answered only part by part)."""
    from ..data import paths
    from ..data.jsonl import read_jsonl

    names = paths.TRAIN_PROMPT_FILES + ((paths.PARTS_PROMPTS,) if by_parts else ())
    files = files or [d / f for f in names if (d / f).exists()]
    return [r for f in files for r in read_jsonl(f, required=("id", "prompt", "category"))]


def run_prompts(args) -> int:
    from ..data import paths
    from ..data.jsonl import write_jsonl
    from ..data.prompts import build_prompt_sets

    d = _data_dir(args)
    if args.paired_lists and not args.serial_lists and not (d / paths.SERIAL_PROMPTS).exists():  # before writing any
        raise UsageError(f"--paired-lists needs {d / paths.SERIAL_PROMPTS}: write it with --serial-lists N")
    train, evals = build_prompt_sets(seed=args.seed, n_train=args.n_train)
    write_jsonl(d / paths.TRAIN_PROMPTS, train)
    write_jsonl(d / paths.EVAL_PROMPTS, evals)
    _progress(f"{len(train)} training prompts -> {d / paths.TRAIN_PROMPTS}")
    _progress(f"{len(evals)} evaluation prompts -> {d / paths.EVAL_PROMPTS}")
    extra = []
    if args.extra:
        from ..data.prompts import extra_prompts

        extra = extra_prompts(train, args.extra, seed=args.seed)
        write_jsonl(d / paths.EXTRA_PROMPTS, extra)
        _progress(f"{len(extra)} extra training prompts -> {d / paths.EXTRA_PROMPTS}")
    if args.more:
        from ..data.overlap import IndependentSet
        from ..data.prompts import more_prompts

        if not extra and (d / paths.EXTRA_PROMPTS).exists():  # written before: its prompts are not repeated
            from ..data.jsonl import read_jsonl

            extra = read_jsonl(d / paths.EXTRA_PROMPTS)
        more = more_prompts(train + extra, args.more, seed=args.seed)
        ind = IndependentSet.load(args.independent)
        more, dropped = ind.split(more)
        write_jsonl(d / paths.MORE_PROMPTS, more)
        _progress(f"{len(more)} more training prompts -> {d / paths.MORE_PROMPTS} ({len(dropped)} dropped as "
                  f"identical or close to one of the {len(ind)} independent evaluation prompts"
                  + (f": {'; '.join(r['prompt'] for r in dropped[:5])}" if dropped else "") + ")")
    if args.parts:
        from ..data.overlap import IndependentSet
        from ..data.parts import composed_prompts
        from ..data.prompts import family_topics

        topics = next(pool for fam, pool in family_topics(args.seed) if fam.category == "multi_part")
        have = [r["prompt"] for r in _prompt_rows(d, by_parts=False)]
        parts, dropped = IndependentSet.load(args.independent).split(
            composed_prompts(topics, args.parts, seed=args.seed, existing=have))
        write_jsonl(d / paths.PARTS_PROMPTS, parts)
        _progress(f"{len(parts)} composed multi-part prompts -> {d / paths.PARTS_PROMPTS} ({len(dropped)} dropped "
                  f"as identical or close to an independent evaluation prompt)")
    if args.serial_lists:
        from ..data.overlap import IndependentSet
        from ..data.prompts import looks_list_prompts

        have = [r for r in _prompt_rows(d) if not r["id"].startswith("s")]  # not the file being rewritten
        serial, dropped = IndependentSet.load(args.independent).split(looks_list_prompts(have, args.serial_lists,
                                                                                          seed=args.seed))
        write_jsonl(d / paths.SERIAL_PROMPTS, serial)
        _progress(f"{len(serial)} serial prompts that look like lists -> {d / paths.SERIAL_PROMPTS} ({len(dropped)} "
                  f"dropped as identical or close to an independent evaluation prompt)")
    if args.paired_lists:
        from ..data.jsonl import read_jsonl
        from ..data.overlap import IndependentSet
        from ..data.prompts import pair_id, paired_list_prompts

        serial = read_jsonl(d / paths.SERIAL_PROMPTS, required=("id", "prompt", "category"))
        have = [r for r in _prompt_rows(d) if not (r["id"].startswith("t") and pair_id(r["id"]))]  # not the file being rewritten
        twins, dropped = IndependentSet.load(args.independent).split(
            paired_list_prompts(serial, have, seed=args.seed))
        write_jsonl(d / paths.PAIRED_PROMPTS, twins)
        _progress(f"{len(twins)} list-style twins of those serial prompts -> {d / paths.PAIRED_PROMPTS} "
                  f"({len(dropped)} dropped as identical or close to an independent evaluation prompt)")
    return 0


def run_answers(args) -> int:
    from ..data import paths
    from ..data.answers import AnswerSettings, answer_row, generate_answers

    d = _data_dir(args)
    if args.by_parts and args.finish_lists:
        raise UsageError("--by-parts and --finish-lists are two separate runs; give one")
    if args.finish_lists:  # the rows to finish are answer rows, not prompts
        from ..data.jsonl import read_jsonl
        from ..data.lists import finish_list, finishable

        prompts, answer = finishable(read_jsonl(d / paths.ANSWERS)), finish_list
    else:
        prompts, answer = _prompt_rows(d, args.prompts, by_parts=args.by_parts), answer_row
    settings = AnswerSettings(max_tokens=args.max_tokens or get(args.base).answer_tokens,
                              concurrency=args.concurrency, count_retry=args.count_retry, by_parts=args.by_parts)
    if args.by_parts:
        from ..data.parts import parts_of

        prompts = [p for p in prompts if parts_of(p["prompt"])]
    fewshot = args.fewshot or get(args.base).fewshot  # None: the pipeline's default example turns
    if fewshot:
        settings.fewshot = fewshot
    engine = _engine(args, n_slots=args.concurrency, per_slot=1024 if args.finish_lists else 512)
    try:
        name = paths.ANSWERS_BY_PARTS if args.by_parts else paths.ANSWERS_LISTS if args.finish_lists else paths.ANSWERS
        res = generate_answers(engine, prompts, args.out or d / name, settings, limit=args.limit, log=_progress,
                               answer=answer)
    finally:
        engine.close()
    _progress(f"answers: {res}")
    return 0


def run_build(args) -> int:
    from ..data import paths
    from ..data.build import BuildSettings, build_dataset
    from ..data.jsonl import DataFileError

    d = _data_dir(args)
    if args.answers:
        answers = [Path(a) for a in args.answers]
    else:
        answers = [d / paths.ANSWERS] + [p for p in [d / paths.ANSWERS_BY_PARTS, d / paths.ANSWERS_LISTS] if p.exists()]
        if not answers[0].exists():
            raise DataFileError(f"{answers[0]} does not exist (run `python -m aspd_local data answers` first)")
    from ..data.overlap import IndependentSet

    settings = BuildSettings()
    settings.serial_rows_from_list_prompts = args.keep_serial_list_answers
    settings.filters = not args.no_filters
    settings.prompts_by_id = {r["id"]: r for r in _prompt_rows(d)}
    settings.independent = IndependentSet.load(args.independent)
    if args.threshold is not None:
        settings.independence_threshold = args.threshold
    engine = None if args.no_independence else _engine(args)
    try:
        stats = build_dataset(answers, d, engine, settings, log=_progress)
    finally:
        if engine is not None:
            engine.close()
    if args.base != DEFAULT_BASE:  # name the base in the statistics and the report
        from ..data.jsonl import write_json, write_text
        from ..data.report import render_report

        stats["base"] = {"name": args.base, "title": get(args.base).title}
        write_json(d / paths.STATS, stats)
        write_text(d / paths.REPORT, render_report(stats))
    _progress(f"{stats['rows']} rows ({stats['parallel_rows']} parallel) -> {d / paths.TRAIN}")
    return 0


def main(argv=None) -> int:  # pragma: no cover - for running this module alone
    p = CliParser()
    add_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    return args.func(args)
