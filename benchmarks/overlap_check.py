"""How much the independent evaluation set (``benchmarks/independent_prompts.jsonl``) shares with the
prompts the shipped delta was trained on.

The independent set is written by hand, not by the training prompt generator
(``aspd_local/data/prompts.py``), and training never sees it. Its rows are
``{"id", "prompt", "category", "kind", "count", ...}``:

- ``category``: the generator's category names (``list``, ``steps``, ``comparison``, ``pros_cons``,
  ``multi_part``, ``sections``, ``tips``; ``serial_fact``, ``serial_math``, ``serial_yesno``,
  ``serial_definition``, ``serial_sentence``), so ``bench --prompts`` reports adaptivity per category as it
  does for the generator's held-out set. ``serial_sentence`` also holds short creative writing, rewrites and
  translations; ``serial_definition`` short explanations; ``serial_yesno`` also "which of two" questions
  that want one sentence.
- ``kind``: ``list`` (the answer should open a parallel block) or ``serial``.
- ``count``: how many items the prompt explicitly asks for (2..7), or null (an implicit list, or a serial
  prompt). ``count_form`` says how: ``digits`` ("3"), ``words`` ("three"), ``enumerated`` (the parts are
  named: "what it is, why, and how"; ``count_detail`` says which), ``compound`` ("three pros and three
  cons" -> 6; ``count_detail`` "3 pros + 3 cons").
- ``looks_list`` (serial rows): true for a prompt that looks list-like but is not ("Name the capital of
  Nigeria.", "Summarize the three laws of motion in one sentence.").

The training prompts are every prompt file the pipeline answered to build the delta's training rows
(``docs/aspd-pipeline.md``): ``prompts_train.jsonl`` (400), ``prompts_train_extra.jsonl`` (320) and, once
written, every other file of ``paths.TRAIN_PROMPT_FILES`` (``prompts_train_more.jsonl``, 2,599;
``prompts_train_serial.jsonl``, 400 list-looking serial prompts; ``prompts_train_paired.jsonl``, their 387
list-style twins) and ``prompts_train_parts.jsonl`` (300 composed multi-part prompts) in ``models/aspd-gemma3-270m/data``; ``train.jsonl`` keeps a subset of them. Where those files are missing
they are regenerated as ``python -m aspd_local data prompts --extra 320`` writes them
(``build_prompt_sets(seed=0, n_train=400)``, ``extra_prompts(train, 320, seed=0)``). The generator's
held-out evaluation prompts and the few-shot example turns the base model saw while writing the training
answers (``aspd_local/data/fewshot.py``) are compared too, for reference.

Reported: for word n-grams of n = 3, 4, 5, 8, the share of independent prompts that share at least one
n-gram with any training prompt; per prompt, the longest shared run of words (mean / median / max);
exact duplicates (after lower-casing and dropping punctuation); the largest token Jaccard similarity and
near-duplicates (Jaccard >= 0.8); and the most-overlapping pairs.

    .venv/bin/python benchmarks/overlap_check.py --json docs/bench/independent_overlap.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aspd_local.data import paths  # noqa: E402
from aspd_local.data.overlap import NEAR_DUPLICATE, jaccard, words  # noqa: E402  (what `data build` drops by)

INDEPENDENT = ROOT / "benchmarks" / "independent_prompts.jsonl"
NS = (3, 4, 5, 8)
SEED, N_TRAIN, N_EXTRA = 0, 400, 320  # as docs/aspd-pipeline.md runs `data prompts --extra 320`


def normalized(text: str) -> str:
    return " ".join(words(text))


def ngrams(ws: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)}


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_independent(path: Path = INDEPENDENT) -> list[dict]:
    return read_rows(path)


def load_training(data_dir: Path = paths.DATA_DIR) -> tuple[list[dict], str]:
    """The training prompts (training + extra, then every other prompt file the pipeline answers and the
    composed multi-part prompts, where written) and where they came from."""
    files = [data_dir / paths.TRAIN_PROMPTS, data_dir / paths.EXTRA_PROMPTS]
    if all(f.exists() for f in files):
        files += [data_dir / f for f in paths.TRAIN_PROMPT_FILES + (paths.PARTS_PROMPTS,)
                  if data_dir / f not in files and (data_dir / f).exists()]
        rows = [r for f in files for r in read_rows(f)]
        return rows, " + ".join(str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f) for f in files)
    from aspd_local.data.prompts import build_prompt_sets, extra_prompts

    train, _ = build_prompt_sets(seed=SEED, n_train=N_TRAIN)
    return train + extra_prompts(train, N_EXTRA, seed=SEED), \
        f"regenerated: build_prompt_sets(seed={SEED}, n_train={N_TRAIN}) + extra_prompts(..., {N_EXTRA}, seed={SEED})"


def load_references(data_dir: Path = paths.DATA_DIR) -> dict[str, list[str]]:
    """Prompts that are not training prompts but are worth comparing with: the generator's held-out set and
    the few-shot example turns."""
    from aspd_local.data.fewshot import SHOTS

    out = {"fewshot_examples": [u for u, _ in SHOTS]}
    ev = data_dir / paths.EVAL_PROMPTS
    if ev.exists():
        out["generator_eval_prompts"] = [r["prompt"] for r in read_rows(ev)]
    else:
        from aspd_local.data.prompts import build_prompt_sets

        out["generator_eval_prompts"] = [r["prompt"] for r in build_prompt_sets(seed=SEED, n_train=N_TRAIN)[1]]
    return out


def _longest_shared(ws: list[str], grams_by_n: dict[int, set]) -> tuple[int, tuple[str, ...]]:
    best, gram = 0, ()
    for n in range(1, len(ws) + 1):
        hit = next((g for g in (tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)) if g in grams_by_n.get(n, ())),
                   None)
        if hit is None:
            break  # no shared n-gram means no shared longer one
        best, gram = n, hit
    return best, gram


def _summary(xs: list[float]) -> dict:
    return {"mean": round(statistics.fmean(xs), 3), "median": statistics.median(xs), "max": max(xs)} if xs else {}


def compare(independent: list[str], training: list[str], top: int = 10) -> dict:
    """Overlap figures of ``independent`` prompts against ``training`` prompts."""
    tr_words = [words(p) for p in training]
    tr_sets = [set(w) for w in tr_words]
    max_len = max((len(w) for w in tr_words), default=0)
    grams_by_n = {n: set().union(*(ngrams(w, n) for w in tr_words)) for n in range(1, max_len + 1)}
    tr_norm = {normalized(p): p for p in training}
    rows = []
    for p in independent:
        ws = words(p)
        s = set(ws)
        longest, gram = _longest_shared(ws, grams_by_n)
        jac = [jaccard(s, t) for t in tr_sets]
        j = max(range(len(jac)), key=jac.__getitem__) if jac else None
        # the training prompt that shares the longest run (ties: the most similar one)
        if longest:
            g = " ".join(gram)
            cands = [i for i, w in enumerate(tr_words) if f" {g} " in f" {' '.join(w)} "]
            k = max(cands, key=jac.__getitem__)
        else:
            k = j
        rows.append({"prompt": p, "longest_shared": longest, "shared": " ".join(gram),
                     "longest_with": training[k] if k is not None else None,
                     "max_jaccard": round(jac[j], 4) if j is not None else 0.0,
                     "most_similar": training[j] if j is not None else None,
                     "ngrams": {n: bool(ngrams(ws, n) & grams_by_n.get(n, set())) for n in NS}})
    n = len(rows)
    exact = [r["prompt"] for r in rows if normalized(r["prompt"]) in tr_norm]
    near = [{"prompt": r["prompt"], "training": r["most_similar"], "jaccard": r["max_jaccard"]}
            for r in rows if r["max_jaccard"] >= NEAR_DUPLICATE]
    ranked = sorted(rows, key=lambda r: (r["longest_shared"], r["max_jaccard"]), reverse=True)[:top]
    return {
        "prompts": n,
        "ngram_share": {str(k): {"prompts": sum(r["ngrams"][k] for r in rows),
                                 "share": round(sum(r["ngrams"][k] for r in rows) / n, 4) if n else None}
                        for k in NS},
        "longest_shared_words": {**_summary([r["longest_shared"] for r in rows]),
                                 "histogram": {str(k): v for k, v in
                                               sorted(Counter(r["longest_shared"] for r in rows).items())}},
        "max_jaccard": _summary([r["max_jaccard"] for r in rows]),
        "exact_duplicates": len(exact),
        "exact_duplicate_prompts": exact,
        "near_duplicates": near,
        "near_duplicate_threshold": NEAR_DUPLICATE,
        "top_pairs": [{"independent": r["prompt"], "training": r["longest_with"], "shared_words": r["longest_shared"],
                       "shared": r["shared"], "max_jaccard": r["max_jaccard"]} for r in ranked],
        "_rows": rows,
    }


def check(independent_path: Path = INDEPENDENT, data_dir: Path = paths.DATA_DIR, top: int = 10) -> dict:
    ind = load_independent(independent_path)
    training, source = load_training(data_dir)
    res = compare([r["prompt"] for r in ind], [r["prompt"] for r in training], top=top)
    rows = res.pop("_rows")
    by_kind: dict[str, dict] = {}
    for key in ("kind", "category"):
        groups: dict[str, list[dict]] = {}
        for r, x in zip(ind, rows):
            groups.setdefault(r[key], []).append(x)
        by_kind[key] = {g: {"prompts": len(v),
                            **{f"share_{n}gram": round(sum(x["ngrams"][n] for x in v) / len(v), 4) for n in NS},
                            "longest_shared_mean": round(statistics.fmean(x["longest_shared"] for x in v), 3)}
                        for g, v in sorted(groups.items())}
    refs = {}
    for name, prompts in load_references(data_dir).items():
        r = compare([x["prompt"] for x in ind], prompts, top=3)
        r.pop("_rows")
        refs[name] = {k: r[k] for k in ("prompts", "ngram_share", "longest_shared_words", "max_jaccard",
                                        "exact_duplicates", "near_duplicates", "top_pairs")}
        refs[name]["reference_prompts"] = len(prompts)
    return {"independent_set": str(independent_path.relative_to(ROOT)) if independent_path.is_relative_to(ROOT)
            else str(independent_path),
            "independent_prompts": len(ind),
            "kinds": dict(Counter(r["kind"] for r in ind)),
            "categories": dict(sorted(Counter(r["category"] for r in ind).items())),
            "counts": {"null" if k is None else str(k): v
                       for k, v in sorted(Counter(r.get("count") for r in ind).items(),
                                          key=lambda kv: (kv[0] is not None, kv[0] or 0))},
            "looks_list_serial": sum(bool(r.get("looks_list")) for r in ind),
            "training_prompts": len(training),
            "training_source": source,
            "tokenizer": "lower-cased words [a-z0-9]+ (with an apostrophe suffix); punctuation dropped",
            "vs_training": res, "per_group": by_kind, "also_compared": refs}


def render(rep: dict) -> str:
    v = rep["vs_training"]
    out = [f"independent set: {rep['independent_prompts']} prompts {rep['kinds']} "
           f"({rep['looks_list_serial']} serial prompts that look list-like)",
           f"training prompts: {rep['training_prompts']} ({rep['training_source']})", "",
           f"{'reference':<24} {'3-gram':>7} {'4-gram':>7} {'5-gram':>7} {'8-gram':>7} "
           f"{'longest mean/med/max':>21} {'exact':>6} {'near':>5}"]
    for name, x in [("training", v), *rep["also_compared"].items()]:
        sh = " ".join(f"{x['ngram_share'][str(n)]['share']:>7.1%}" for n in NS)
        ls = x["longest_shared_words"]
        out.append(f"{name:<24} {sh} {ls['mean']:>9.2f}/{ls['median']:>4}/{ls['max']:>4}   "
                   f"{x['exact_duplicates']:>6} {len(x['near_duplicates']):>5}")
    out += ["", "share of prompts sharing an n-gram with a training prompt, per kind:"]
    for k, x in rep["per_group"]["kind"].items():
        out.append(f"  {k:<8} " + " ".join(f"{n}-gram {x[f'share_{n}gram']:.1%}" for n in NS)
                   + f"  longest mean {x['longest_shared_mean']}")
    out += ["", f"max token Jaccard with a training prompt: mean {v['max_jaccard']['mean']}, "
                f"median {v['max_jaccard']['median']}, max {v['max_jaccard']['max']} "
                f"(near-duplicate at >= {v['near_duplicate_threshold']})",
            "", "most-overlapping pairs (shared words, Jaccard):"]
    for p in v["top_pairs"]:
        out.append(f"  {p['shared_words']:>2} {p['max_jaccard']:.2f}  {p['independent']!r}")
        out.append(f"           ~ {p['training']!r}  [{p['shared']}]")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", default=str(INDEPENDENT), help="the independent set (default: %(default)s)")
    ap.add_argument("--data-dir", default=str(paths.DATA_DIR), help="where the training prompts are")
    ap.add_argument("--top", type=int, default=10, help="how many most-overlapping pairs to report")
    ap.add_argument("--json", metavar="PATH", help="write the report as JSON to PATH ('-': stdout, no table)")
    args = ap.parse_args(argv)
    rep = check(Path(args.prompts).resolve(), Path(args.data_dir), top=args.top)
    text = json.dumps(rep, indent=2, ensure_ascii=False)
    if args.json == "-":
        print(text)
    else:
        print(render(rep))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    v = rep["vs_training"]
    return 1 if v["exact_duplicates"] or v["near_duplicates"] else 0


if __name__ == "__main__":
    sys.exit(main())
