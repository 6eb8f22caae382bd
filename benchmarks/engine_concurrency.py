"""Requests at once, in-process (no HTTP): C client threads run the bundled set's first 8 prompts through
``Engine.generate`` on the default model (mode parallel, greedy, 120 tokens), closed loop. Per run:
tokens/s, decode steps, rows per step, decode ms per step, and the engine's other time per step; then
speculation on over off per concurrency. Settings interleave, twice; each run starts from an empty KV
cache and an empty global suffix index (so no run drafts an answer an earlier run wrote).

    .venv/bin/python benchmarks/engine_concurrency.py [--json OUT] [--model GGUF] [--prompts FILE.jsonl]
        [--limit N] [--max-tokens N] [--concurrency 1,4] [--speculate none,suffix] [--repeats 2] [--mode parallel]

It uses only the public API, so ``benchmarks/ab_commits.py`` runs this same file against two commits'
packages side by side.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from importlib.resources import files

from aspd_local import Engine
from aspd_local.bench.runner import load_prompts
from aspd_local.models import default_model_path
from aspd_local.suffix.index import TokenIndex


def run(e: Engine, prompts: list[str], conc: int, speculate: str, max_tokens: int = 120, mode: str = "parallel") -> dict:
    e.clear_cache()
    e.set_global_index(TokenIndex(e.config.suffix_max_depth))
    todo, lock, results = list(prompts), threading.Lock(), []

    def client():
        while True:
            with lock:
                if not todo:
                    return
                p = todo.pop(0)
            r = e.generate(p, max_tokens=max_tokens, speculate=speculate, mode=mode)
            with lock:
                results.append(r)

    t0, steps0, dec0, rows0 = time.perf_counter(), e.scheduler.steps, e.ctx.decode_s, e.ctx.decode_tokens
    threads = [threading.Thread(target=client) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    steps, dec, rows = e.scheduler.steps - steps0, e.ctx.decode_s - dec0, e.ctx.decode_tokens - rows0
    toks = sum(len(r.tokens) for r in results)
    return {"concurrency": conc, "speculate": speculate, "tokens": toks, "wall_s": round(wall, 3),
            "tokens_per_s": round(toks / wall, 2), "steps": steps, "rows_per_step": round(rows / steps, 2),
            "decode_ms_per_step": round(1000 * dec / steps, 2), "other_ms_per_step": round(1000 * (wall - dec) / steps, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--model", default=None, help="GGUF (default: the default model)")
    ap.add_argument("--prompts", default=None, help="a prompts .jsonl (default: the bundled set)")
    ap.add_argument("--limit", type=int, default=8, help="the first N prompts")
    ap.add_argument("--max-tokens", type=int, default=120)
    ap.add_argument("--mode", default="parallel")
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--speculate", default="none,suffix")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--aspd-tokens", default=None, help="ASPD token names for a model without them in its metadata")
    a = ap.parse_args()
    src = a.prompts or str(files("aspd_local.resources").joinpath("bench_prompts.jsonl"))
    prompts = [r["prompt"] for r in load_prompts(src)][:a.limit]
    concs = [int(c) for c in a.concurrency.split(",")]
    specs = a.speculate.split(",")
    kw = {"aspd_tokens": a.aspd_tokens} if a.aspd_tokens else {}
    e = Engine(a.model or str(default_model_path()), suffix_cache=False, n_threads=2, **kw)
    try:
        e.generate("warm up", max_tokens=8)
        rows = []
        for _ in range(a.repeats):
            for sp in specs:
                for c in concs:
                    rows.append(run(e, prompts, c, sp, a.max_tokens, a.mode))
                    print(json.dumps(rows[-1]), flush=True)
    finally:
        e.close()
    by = {}
    for r in rows:
        by.setdefault((r["speculate"], r["concurrency"]), []).append(r["tokens_per_s"])
    summary = {f"C={c} {c}-vs-1 ({sp})": [round(x / y, 3) for x, y in zip(by[(sp, c)], by[(sp, 1)])]
               for sp in specs for c in concs if c != 1 and (sp, 1) in by}
    if "none" in specs and "suffix" in specs:
        summary.update({f"C={c} suffix/none": [round(x / y, 3) for x, y in zip(by[("suffix", c)], by[("none", c)])]
                        for c in concs})
    print(json.dumps(summary))
    if a.json_out:
        with open(a.json_out, "w") as fh:
            json.dump({"runs": rows, "summary": summary}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
