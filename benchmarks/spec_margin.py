"""Speculation's margin: plain vs suffix speculation at several `suffix_min_gain` values, the default model,
the first N held-out prompts, greedy, 200 tokens; prints each setting's speed over plain decoding (one
run, settings interleaved per prompt; each prompt starts from an empty cache and an empty global index).

    .venv/bin/python benchmarks/spec_margin.py 20 1.0,1.1,1.3,1.6
"""
import sys
from aspd_local import Engine
from aspd_local.models import default_model_path
from aspd_local.bench.runner import load_prompts
from aspd_local.suffix.index import TokenIndex
prompts = [r["prompt"] for r in load_prompts("models/aspd-gemma3-270m/data/prompts_eval.jsonl")][:int(sys.argv[1])]
gains = [float(g) for g in sys.argv[2].split(",")]
e = Engine(str(default_model_path()), suffix_cache=False)
e.generate("warm up", max_tokens=4)
tot = {g: 0.0 for g in gains}; tot["none"] = 0.0
for p in prompts:
    e.clear_cache()
    r = e.generate(p, max_tokens=200, speculate="none"); tot["none"] += r.stats.wall_s - r.stats.prompt_s
    for g in gains:
        e.config.suffix_min_gain = g
        e.set_global_index(TokenIndex(e.config.suffix_max_depth))
        e.clear_cache()
        r = e.generate(p, max_tokens=200, speculate="suffix"); tot[g] += r.stats.wall_s - r.stats.prompt_s
print({k: round(tot["none"] / v, 4) for k, v in tot.items()})
