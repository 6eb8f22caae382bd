"""From answers to training rows: extract, validate, filter, measure independence, write rows and statistics.

A row whose answer has no parallel structure is a serial row (by default only for prompts of the
serial categories; see BuildSettings). A row where a block was found but fails a check is dropped
(not serialised): the training data then never shows the same kind of
structure both ways, and every rejection is counted with its reason.

Checks, in order (the first reason an answer fails is the one counted):
1. the prompt is not (nearly) a prompt of the independent evaluation set (``overlap.py``);
2. the answer was usable when it was written (no loop, not cut, not a copy of an example: ``answers.py``);
3. the segments render back to the answer, and every block has well-formed branches (``validate.py``);
4. the layout matches the prompt: a list-style prompt gets a block, a serial prompt none;
5. the answer ended by itself (not at the token cap), count, duplicate items and titles (``filters.py``);
6. the branches of every block are independent (``independence.py``; the model, so last).
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..engine import Engine
from . import paths
from .extract import extract
from .fewshot import messages_for, shots_named
from .filters import answer_filter_problems
from .independence import block_scores
from .jsonl import Appender, read_jsonl, write_json, write_jsonl, write_text
from .overlap import IndependentSet
from .quality import asked_count, list_items
from .report import render_report
from .segments import Block, render, to_json
from .validate import Rules, block_problems, render_problems

# nats/token a branch's body may gain from seeing the sibling branches before it. Chosen from the
# data (first 75 answers, 29 blocks scored): the median worst gain is 0.65 -- Gemma 3 270M words the
# items of one list alike ("it helps keep ..."), which siblings make predictable without the content
# depending on them; above 1.0 (the top ~17%) sat the answers whose items copy or contrast with a
# sibling ("Lakes: they are smaller bodies of water" after "Rivers: ... large", a duplicated item).
DEFAULT_INDEPENDENCE_THRESHOLD = 1.0


@dataclass
class BuildSettings:
    rules: Rules = field(default_factory=Rules)
    independence_threshold: float = DEFAULT_INDEPENDENCE_THRESHOLD
    # Serial rows come from prompts that should stay serial (short facts, arithmetic, ...). A list-style
    # prompt the base model answered without any structure ("Name four flowers." -> one sentence) is
    # dropped by default: kept, it would teach the model to answer list-style prompts serially as
    # often as the 270M base model failed to make a list (about half the time).
    serial_rows_from_list_prompts: bool = False
    # the prompt rows (their ``count``) by id, for answers written before answer rows carried it
    prompts_by_id: dict[str, dict] = field(default_factory=dict)
    # prompts never to train on (the independent evaluation set); None: none
    independent: IndependentSet | None = None
    # issue 13: count, duplicate items, titles (filters.py); False: only the checks before issue 13
    filters: bool = True


def asked_of(a: dict, prompts_by_id: dict[str, dict] | None = None) -> int | None:
    """How many items the answer's prompt asks for: the answer row's ``count``, else its prompt row's (same
    id and text), else none for a serial category, else read from the prompt's words."""
    if "count" in a:
        return a["count"]
    p = (prompts_by_id or {}).get(a["id"])
    if p is not None and p.get("prompt") == a["prompt"] and "count" in p:
        return p["count"]
    if a["category"].startswith("serial"):
        return None
    return asked_count(a["prompt"])


def _key(row: dict, titles: list[str] = ()) -> str:
    """Identifies what a block's scores depend on: prompt, answer, the block's titles, and the example
    turns before the prompt (named only when not the first set, so older keys stay valid)."""
    shots = [f"fewshot={row['fewshot']}"] if row.get("fewshot") not in (None, "v1") else []
    text = "\0".join([row["prompt"], row["answer"], *titles, *shots])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ScoreCache:
    """Independence scores per (answer, block), kept next to the data: rebuilding with another
    threshold does not score again."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[tuple[str, int], list[dict]] = {}
        if path.exists():
            for r in read_jsonl(path):
                self.rows[(r["key"], r["block"])] = r["scores"]
        self._out = None

    def get(self, key: str, block: int):
        return self.rows.get((key, block))

    def put(self, key: str, block: int, scores: list[dict]) -> None:
        if self._out is None:
            self._out = Appender(self.path)
        self._out.add({"key": key, "block": block, "scores": scores})
        self.rows[(key, block)] = scores

    def close(self):
        if self._out is not None:
            self._out.close()


def merged_answers(paths) -> list[dict]:
    """The answer rows of one file, or of several: a row of a later file replaces the row of an earlier
    one with the same id, in its place (the part-by-part answers of ``data answers --by-parts`` replace
    the whole answers of the same prompts)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    by_id: dict[str, dict] = {}
    for path in paths:
        for row in read_jsonl(path, required=("id", "category", "prompt", "answer")):
            by_id[row["id"]] = row
    return list(by_id.values())


def build_dataset(answers_path, out_dir, engine: Engine | None, settings: BuildSettings | None = None,
                  log: Callable[[str], None] | None = None) -> dict:
    """Write ``train.jsonl``, ``stats.json`` and ``report.md`` into ``out_dir``; returns the statistics.
    ``answers_path``: an answers file, or several (:func:`merged_answers`).
    ``engine`` (the base model) measures independence and counts tokens; None skips the measurement
    (tokens are then counted as words)."""
    settings = settings or BuildSettings()
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    answers = merged_answers(answers_path)
    tokenize = engine.tokenize if engine is not None else (lambda s: s.split())
    cache = ScoreCache(out_dir / "independence.jsonl") if engine is not None else None
    reasons: Counter = Counter()
    rows: list[dict] = []
    gains: list[float] = []
    kinds: Counter = Counter()
    by_count: dict[int, Counter] = {}
    independent_dropped = 0
    t_extract = t_validate = t_score = 0.0
    t0 = time.perf_counter()
    try:
        for i, a in enumerate(answers, 1):
            if settings.independent is not None and settings.independent.too_close(a["prompt"]):
                independent_dropped += 1
                reasons["prompt: near the independent evaluation set"] += 1
                continue
            asked = asked_of(a, settings.prompts_by_id)
            tally = by_count.setdefault(asked, Counter()) if asked is not None else Counter()
            tally["answers"] += 1
            if a.get("rejected"):
                reasons[f"answer: {a['rejected']}"] += 1
                continue
            tally["usable"] += 1
            tally["items_match"] += len(list_items(a["answer"])) == asked
            t = time.perf_counter()
            a = even_last_branch(a)
            segs = extract(a["answer"])
            t_extract += time.perf_counter() - t
            t = time.perf_counter()
            problems = render_problems(a["answer"], segs)
            blocks = [s for s in segs if isinstance(s, Block)]
            for b in blocks:
                problems += [f"block: {p}" for p in block_problems(b, tokenize, settings.rules)]
            serial_prompt = a["category"].startswith("serial")
            if not problems and not blocks and not settings.serial_rows_from_list_prompts and not serial_prompt:
                problems.append("serial answer to a list-style prompt")
            if not problems and blocks and serial_prompt:
                problems.append("list answer to a serial prompt")
            if not problems and settings.filters:
                if a.get("ended") == "length":  # cut by the token cap: a model trained on it runs on
                    problems.append("filter: token_cap")
                problems += [f"filter: {p}" for p in answer_filter_problems(a["answer"], segs, asked)]
            t_validate += time.perf_counter() - t
            if not problems and blocks and engine is not None:
                t = time.perf_counter()
                worst = _worst_gain(engine, cache, a, segs)
                t_score += time.perf_counter() - t
                gains.append(worst)
                if worst > settings.independence_threshold:
                    problems.append("block: dependent_branches")
            if problems:
                reasons[problems[0]] += 1
                continue
            tally["rows"] += 1
            kinds.update(b.kind for b in blocks)
            rows.append({"id": a["id"], "category": a["category"],
                         "messages": [{"role": "user", "content": a["prompt"]}],
                         "answer": a["answer"], "segments": to_json(segs)})
            if i % 25 == 0:
                log(f"build: {i}/{len(answers)} answers, {len(rows)} rows "
                    f"({sum(1 for r in rows if len(r['segments']) > 1 or r['segments'][0]['type'] == 'block')}"
                    f" parallel)")
    finally:
        if cache is not None:
            cache.close()
    for r in rows:  # the invariant, once more on what is written
        assert render_json(r["segments"]) == r["answer"], r["id"]
    write_jsonl(out_dir / paths.TRAIN, rows)
    stats = _stats(answers, rows, reasons, kinds, gains, tokenize, settings)
    stats["count"] = {str(k): {"answers": v["answers"], "usable": v["usable"], "items_match": v["items_match"],
                               "rows": v["rows"]} for k, v in sorted(by_count.items())}
    stats["independent_set"] = {"prompts": len(settings.independent) if settings.independent is not None else 0,
                                "threshold": settings.independent.threshold if settings.independent else None,
                                "answers_dropped": independent_dropped}
    stats["fewshot"] = dict(Counter(a.get("fewshot", "v1") for a in answers))
    # answers_summed: each answer's own time, summed; with several in flight the wall time was less
    stats["seconds"] = {"answers_summed": round(sum(a.get("seconds", 0) for a in answers), 1),
                        "extract": round(t_extract, 2), "validate": round(t_validate, 2),
                        "independence": round(t_score, 1), "build_total": round(time.perf_counter() - t0, 1)}
    write_json(out_dir / paths.STATS, stats)
    write_text(out_dir / paths.REPORT, render_report(stats))
    return stats


def even_last_branch(a: dict) -> dict:
    """An answer whose final list item ends the text without the newline every other item has gets that
    newline: otherwise the last branch of its block ends differently from its siblings, and a model trained
    on such blocks learns to close middle branches without a newline (items then run together)."""
    text = a["answer"]
    if text.endswith("\n"):
        return a
    segs = extract(text)
    last = segs[-1] if segs else None
    if isinstance(last, Block) and len(last.branches) > 1 \
            and all(b.content.endswith("\n") for b in last.branches[:-1]):
        return {**a, "answer": text + "\n"}
    return a


def render_json(segments: list[dict]) -> str:
    return "".join(s["text"] if s["type"] == "serial" else "".join(b["content"] for b in s["branches"])
                   for s in segments)


def _worst_gain(engine: Engine, cache: ScoreCache, a: dict, segs) -> float:
    """The largest gain of any branch of any block in the answer (nats/token)."""
    prompt_tokens = engine.prompt_tokens(messages_for(a["prompt"], shots_named(a.get("fewshot"))))
    worst = float("-inf")
    for bi, s in enumerate(segs):
        if not isinstance(s, Block):
            continue
        key = _key(a, s.titles)
        scores = cache.get(key, bi)
        if scores is None:
            before = render(segs[:bi])
            scores = [{"alone": round(x.alone, 4), "with_siblings": round(x.with_siblings, 4), "tokens": x.tokens}
                      for x in block_scores(engine, prompt_tokens, before, s)]
            cache.put(key, bi, scores)
        for x in scores:
            worst = max(worst, x["with_siblings"] - x["alone"])
    return worst


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 4)


def _stats(answers, rows, reasons, kinds, gains, tokenize, settings) -> dict:
    n_blocks = Counter()
    branch_tokens = []
    per_cat: dict[str, dict] = {}
    parallel = 0
    for r in rows:
        blocks = [s for s in r["segments"] if s["type"] == "block"]
        c = per_cat.setdefault(r["category"], {"rows": 0, "parallel": 0})
        c["rows"] += 1
        if blocks:
            parallel += 1
            c["parallel"] += 1
        for b in blocks:
            n_blocks[len(b["branches"])] += 1
            branch_tokens += [len(tokenize(x["content"])) for x in b["branches"]]
    for a in answers:
        per_cat.setdefault(a["category"], {"rows": 0, "parallel": 0}).setdefault("answers", 0)
        per_cat[a["category"]]["answers"] += 1
    kept = [a for a in answers if not a.get("rejected")]
    return {
        "answers": len(answers),
        "answers_kept": len(kept),
        # multi-part prompts answered part by part (data/parts.py): all, and usable
        "answers_by_parts": {"answers": sum("parts" in a for a in answers), "kept": sum("parts" in a for a in kept)},
        # short lists finished item by item (data/lists.py): all, and usable
        "answers_finished_lists": {"answers": sum("original_answer" in a for a in answers),
                                   "kept": sum("original_answer" in a for a in kept)},
        "answers_ended": dict(Counter(a.get("ended", "?") for a in kept)),
        # the token cap each answer was written under ("?": a row from before answers recorded it)
        "answers_max_tokens": {str(k): v for k, v in sorted(Counter(a.get("max_tokens", "?") for a in answers).items(),
                                                            key=lambda kv: (kv[0] == "?", str(kv[0]).zfill(9)))},
        "answers_repeat_penalty": {str(k): v for k, v in sorted(Counter(a.get("repeat_penalty", 1.0)
                                                                        for a in kept).items())},
        "rows": len(rows),
        "parallel_rows": parallel,
        "serial_rows": len(rows) - parallel,
        "share_parallel": round(parallel / len(rows), 4) if rows else 0.0,
        "blocks": sum(n_blocks.values()),
        "branches_per_block": {str(k): v for k, v in sorted(n_blocks.items())},
        "mean_branches_per_block": round(sum(k * v for k, v in n_blocks.items()) / max(1, sum(n_blocks.values())), 3),
        "tokens_per_branch": {"mean": round(statistics.mean(branch_tokens), 2) if branch_tokens else 0,
                              "median": statistics.median(branch_tokens) if branch_tokens else 0,
                              "min": min(branch_tokens, default=0), "max": max(branch_tokens, default=0)},
        "block_kinds": dict(kinds),
        "rejections": dict(reasons.most_common()),
        "independence": {"threshold_nats_per_token": settings.independence_threshold,
                         "answers_scored": len(gains),
                         "worst_gain_percentiles": {f"p{int(q * 100)}": _pct(gains, q)
                                                    for q in (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)},
                         "worst_gains": [round(g, 4) for g in sorted(gains)]},
        "per_category": dict(sorted(per_cat.items())),
        "rules": {"min_branches": settings.rules.min_branches, "min_branch_tokens": settings.rules.min_branch_tokens,
                  "max_title_words": settings.rules.max_title_words,
                  "max_title_chars": settings.rules.max_title_chars},
    }
