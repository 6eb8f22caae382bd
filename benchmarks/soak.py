"""Soak the server: many requests at once with cancels, dropped connections and injected faults, then check the cache and
compare every completed greedy answer with the same request run alone (see aspd_local/bench/soak.py).

    .venv/bin/python benchmarks/soak.py [MODEL.gguf] --requests 500 --concurrency 8 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.resources import files

from aspd_local import Engine
from aspd_local.bench.runner import load_prompts
from aspd_local.bench.soak import run_soak
from aspd_local.models import default_model_path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", help="GGUF (default: the default model)")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--parallel", type=int, default=4, help="the engine's slots")
    p.add_argument("--max-tokens", type=int, nargs=2, default=(8, 96), metavar=("LO", "HI"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--faults", type=float, default=0.05, help="share of requests whose step fails on purpose")
    p.add_argument("--refuse", type=float, default=0.05,
                   help="share of decodes holding several requests that are refused (no room) on purpose")
    p.add_argument("--json", dest="json_out", default=None)
    a = p.parse_args()
    prompts = [r["prompt"] for r in load_prompts(str(files("aspd_local.resources").joinpath("bench_prompts.jsonl")))]
    e = Engine(a.model or str(default_model_path()), n_slots=a.parallel, suffix_cache=False)
    try:
        rep = run_soak(e, prompts, requests=a.requests, concurrency=a.concurrency, seed=a.seed,
                       max_tokens=tuple(a.max_tokens), fault_rate=a.faults, refuse_rate=a.refuse, progress=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        e.close()
    out = rep.as_dict()
    print(json.dumps({k: out[k] for k in ("requests", "concurrency", "slots", "seconds", "counts", "refused_decodes", "compared",
                                           "ok")} | {"near_ties": len(out["near_ties"])}))
    for k in ("errors", "cache_problems", "leaks", "mismatches"):
        if out[k]:
            print(f"{k}: {json.dumps(out[k][:5], indent=1)}", file=sys.stderr)
    if a.json_out:
        with open(a.json_out, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0 if rep.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
