"""What each quality judge thinks of text whose quality is not in question.

For the list-style prompts of a bench report, the base model writes its own answer with the data
pipeline's few-shot turns in front (exactly how the training answers were written). Each judge of
``aspd_local.bench.quality`` then scores that answer, the report's ``ar`` answer and its ``parallel``
answer. A judge that rates the base model's own chat answers far below the fine-tuned model's ``ar``
answers measures distance from its own context's style, not quality.

    .venv/bin/python benchmarks/judge_calibration.py docs/bench/bench-aspd-gemma3-q8-cpu.json \\
        --prompts models/aspd-gemma3-270m/data/prompts_eval.jsonl --json docs/bench/judge-calibration-q8-cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from aspd_local.bench.quality import JUDGES, SERIAL_PREFIX, loops, mean_loglik
from aspd_local.bench.runner import load_prompts
from aspd_local.data.fewshot import messages_for, turn_end
from aspd_local.engine import Engine
from aspd_local.models import base_model_path

KINDS = ("base", "ar", "parallel")


def base_answer(engine: Engine, prompt: str, max_tokens: int) -> str:
    """The base model's own answer, asked the way the data pipeline asks it; cut where it starts a new turn."""
    text = engine.generate(messages_for(prompt), mode="ar", max_tokens=max_tokens, keep=False).text
    end = turn_end(text)
    return (text if end is None else text[:end]).strip()


def summarise(rows: list[dict]) -> dict:
    out = {"prompts": len(rows)}
    if not rows:
        return out
    for j in JUDGES:
        m = {k: statistics.fmean(r[j][k] for r in rows) for k in KINDS}
        out[j] = {k: round(v, 4) for k, v in m.items()}
        # > 0: less likely per token than the ar answers
        out[j]["base_vs_ar_drop"] = round((m["ar"] - m["base"]) / abs(m["ar"]), 4)
        out[j]["parallel_vs_ar_drop"] = round((m["ar"] - m["parallel"]) / abs(m["ar"]), 4)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="a bench report with ar and parallel answers")
    ap.add_argument("--prompts", required=True, help="the prompt file of that run")
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    with open(args.report, encoding="utf-8") as fh:
        results = json.load(fh)["results"]
    answers = {(r["id"], r["mode"]): r["text"] for r in results}
    prompts = [p for p in load_prompts(args.prompts) if not p.get("category", "").startswith(SERIAL_PREFIX)
               and (p["id"], "ar") in answers and (p["id"], "parallel") in answers]
    engine = Engine(str(base_model_path()), n_ctx=4096, speculate="none", suffix_cache=False)
    rows = []
    try:
        for i, p in enumerate(prompts):
            texts = {"base": base_answer(engine, p["prompt"], args.max_tokens),
                     "ar": answers[(p["id"], "ar")], "parallel": answers[(p["id"], "parallel")]}
            row = {"id": p["id"], "base_fewshot_answer": texts["base"],
                   "loops": loops(p["prompt"], texts["base"]) or loops(p["prompt"], texts["ar"])}
            for j in JUDGES:
                row[j] = {k: mean_loglik(engine, p["prompt"], t, j) for k, t in texts.items()}
            rows.append(row)
            print(f"[{i + 1}/{len(prompts)}] {p['id']}: " + ", ".join(
                f"{j} " + " ".join(f"{k} {row[j][k]:.3f}" for k in KINDS) for j in JUDGES), file=sys.stderr)
    finally:
        engine.close()
    summary = {"all": summarise(rows), "neither_loops": summarise([r for r in rows if not r["loops"]])}
    print(json.dumps(summary, indent=1))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump({"summary": summary, "rows": rows}, fh, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
