"""A small soak through the HTTP server (the full one is benchmarks/soak.py, 500 requests): 50 requests
at concurrency 8 on 4 slots, mixed modes, speculation on, random cancels and dropped connections, on the
fine-tuned ASPD model (f16), so real parallel blocks run next to other requests; a tenth of the
requests fail on purpose mid-answer and a tenth of the decodes holding several requests are refused for
want of room, and every other answer is still the one it gets alone."""

from importlib.resources import files

from aspd_local import Engine
from aspd_local.bench.runner import load_prompts
from aspd_local.bench.soak import run_soak


def test_soak_50_requests(aspd_f16_path):
    prompts = [r["prompt"] for r in load_prompts(str(files("aspd_local.resources").joinpath("bench_prompts.jsonl")))]
    e = Engine(aspd_f16_path, n_ctx=4096, n_slots=4, suffix_cache=False)
    try:
        rep = run_soak(e, prompts, requests=50, concurrency=8, seed=1, max_tokens=(8, 64), fault_rate=0.1,
                       refuse_rate=0.1)
    finally:
        e.close()
    assert rep.errors == [] and rep.cache_problems == [] and rep.leaks == []
    assert rep.mismatches == []
    # answers that differ only where the answer alone had a near tie (f16 rounding by batch): a few at most
    assert len(rep.near_ties) <= 3, rep.near_ties
    # the run exercised what it claims to: completions, cancels and drops, and compared the completions
    assert rep.counts.get("completed", 0) >= 30 and rep.counts.get("cancelled", 0) >= 2
    assert rep.counts.get("faulted", 0) >= 2 and rep.refused_decodes >= 1  # faults were injected, and pinned
    assert sum(rep.counts.get(k, 0) for k in ("dropped", "completed", "cancelled", "faulted")) == 50
    assert rep.compared == rep.counts["completed"]
