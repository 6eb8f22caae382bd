"""How sure a model is when it opens a parallel block: would a threshold on that choice keep blocks off
serial prompts?

    python benchmarks/block_open_confidence.py MODEL.gguf PROMPTS.jsonl OUT.jsonl [--max-tokens 200]
    python benchmarks/block_open_confidence.py --summary OUT.jsonl

Each prompt is answered greedily in `parallel` mode. A logits processor records, at every step of the
serial stream, the probability of `<|title|>` (the token that opens a block) under the model's
distribution. Per answer it writes whether a block opened and that probability at the step where the
first block opened (``p_open``; None without a block). Resumable: prompts already in OUT are skipped.
``--summary`` prints, for serial and list-style prompts (a category starting ``serial``), the share
that would still open a block if the engine required ``p_open`` of at least each threshold.

Prompts should be ones the model was not trained on, and not the independent sets a threshold would
later be judged on.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def probe(model: str, prompts: str, out: str, max_tokens: int) -> None:
    from aspd_local import Engine

    rows = [json.loads(line) for line in open(prompts, encoding="utf-8") if line.strip()]
    engine = Engine(model, n_ctx=4096, n_slots=1, suffix_cache=False)
    title_open = engine.aspd.title_open
    try:
        done = {json.loads(line)["id"] for line in open(out, encoding="utf-8") if line.strip()}
    except FileNotFoundError:
        done = set()
    with open(out, "a", encoding="utf-8") as f:
        for n, row in enumerate(rows, 1):
            if row["id"] in done:
                continue
            seen: list[tuple[int, float]] = []  # (tokens of the serial stream so far, p(<|title|>))

            def record(info, x: np.ndarray) -> None:
                if info.block is None:
                    z = x.astype(np.float64) - float(x.max())
                    p = np.exp(z)
                    seen.append((len(info.tokens), float(p[title_open] / p.sum())))

            r = engine.generate(row["prompt"], mode="parallel", max_tokens=max_tokens, keep=False,
                                temperature=0, processors=[record], speculate="none")
            tokens = list(r.tokens)
            first = tokens.index(title_open) if title_open in tokens else None
            p_open = next((p for k, p in seen if k == first), None) if first is not None else None
            f.write(json.dumps({"id": row["id"], "category": row["category"], "blocks": r.stats.blocks,
                                "p_open": p_open, "finish": r.finish_reason, "text": r.text}) + "\n")
            f.flush()
            print(f"\r{n}/{len(rows)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def summary(out: str) -> dict:
    rows = [json.loads(line) for line in open(out, encoding="utf-8") if line.strip()]
    groups = {"serial": [r for r in rows if r["category"].startswith("serial")],
              "list": [r for r in rows if not r["category"].startswith("serial")]}
    report = {}
    for name, g in groups.items():
        ps = [r["p_open"] for r in g if r["p_open"] is not None]
        report[name] = {
            "prompts": len(g),
            "p_open_quantiles": {q: round(float(np.quantile(ps, q)), 3) for q in (0.1, 0.25, 0.5)} if ps else None,
            "blocks_if_threshold": {t: round(sum(1 for p in ps if p >= t) / len(g), 3) for t in THRESHOLDS},
        }
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--summary", metavar="OUT", help="summarise an earlier run's OUT file")
    p.add_argument("args", nargs="*", metavar="MODEL PROMPTS OUT")
    p.add_argument("--max-tokens", type=int, default=200)
    a = p.parse_args(argv)
    if a.summary:
        print(json.dumps(summary(a.summary), indent=1))
        return 0
    if len(a.args) != 3:
        p.error("give MODEL.gguf PROMPTS.jsonl OUT.jsonl, or --summary OUT.jsonl")
    probe(*a.args, a.max_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
