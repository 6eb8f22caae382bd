"""Requests at once, in-process (no HTTP): C client threads run the bundled set's first 8 prompts through
``Engine.generate`` on the default model (mode parallel, greedy, 120 tokens), closed loop. Per run:
tokens/s, decode steps, rows per step, decode ms per step, and the engine's other time per step; then
speculation on over off per concurrency. Settings interleave, twice; each run starts from an empty KV
cache and an empty global suffix index (so no run drafts an answer an earlier run wrote).

    .venv/bin/python benchmarks/engine_concurrency.py [--json OUT]
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


def run(e: Engine, prompts: list[str], conc: int, speculate: str) -> dict:
    e.clear_cache()
    e.set_global_index(TokenIndex(e.config.suffix_max_depth))
    todo, lock, results = list(prompts), threading.Lock(), []

    def client():
        while True:
            with lock:
                if not todo:
                    return
                p = todo.pop(0)
            r = e.generate(p, max_tokens=120, speculate=speculate)
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
    a = ap.parse_args()
    prompts = [r["prompt"] for r in load_prompts(str(files("aspd_local.resources").joinpath("bench_prompts.jsonl")))][:8]
    e = Engine(str(default_model_path()), suffix_cache=False, n_threads=2)
    try:
        e.generate("warm up", max_tokens=8)
        rows = []
        for _ in range(2):
            for sp in ("none", "suffix"):
                for c in (1, 4):
                    rows.append(run(e, prompts, c, sp))
                    print(json.dumps(rows[-1]), flush=True)
    finally:
        e.close()
    by = {}
    for r in rows:
        by.setdefault((r["speculate"], r["concurrency"]), []).append(r["tokens_per_s"])
    summary = {f"C={c} 4-vs-1 ({sp})": [round(x / y, 3) for x, y in zip(by[(sp, c)], by[(sp, 1)])]
               for sp in ("none", "suffix") for c in (4,)}
    summary.update({f"C={c} suffix/none": [round(x / y, 3) for x, y in zip(by[("suffix", c)], by[("none", c)])]
                    for c in (1, 4)})
    print(json.dumps(summary))
    if a.json_out:
        with open(a.json_out, "w") as fh:
            json.dump({"runs": rows, "summary": summary}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
