"""Parallel vs sequential decoding of forced ASPD blocks on a real model, with the cost curve's ideal.

Until a fine-tuned ASPD model exists, this drives Gemma 3 270M through blocks with the six ASPD
tokens mapped onto <unused0>..<unused5>: the serial script announces the titles, and each branch's
content is chosen by the model itself (greedy) for a fixed number of tokens. Both schedules run
interleaved, several times; ratios come from one run.

    .venv/bin/python benchmarks/engine_blocks.py [MODEL.gguf] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from aspd_local import Engine
from aspd_local.decoding.costcurve import DEFAULT_SIZES, predicted_ms
from aspd_local.bench.runner import machine_info
from aspd_local.bench.script import FREE, Script, block_script
from aspd_local.models import default_model_path

UNUSED = "<unused0>,<unused1>,<unused2>,<unused3>,<unused4>,<unused5>"
STRUCTURES = {
    "2 x 32": (["One", "Two"], [32, 32]),
    "4 x 32": (["One", "Two", "Three", "Four"], [32] * 4),
    "8 x 32": ([f"Part {i}" for i in range(1, 9)], [32] * 8),
    "4 uneven 8/16/32/64": (["Short", "Medium", "Long", "Longest"], [8, 16, 32, 64]),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--n-gpu-layers", type=int, default=-1)
    ap.add_argument("--json", dest="out")
    args = ap.parse_args()
    path = args.model or str(default_model_path())
    e = Engine(path, aspd_tokens=UNUSED, max_branches=16, n_threads=args.threads, n_gpu_layers=args.n_gpu_layers)
    curve = e.measure_cost_curve(DEFAULT_SIZES)
    print("cost curve ms/decode: " + ", ".join(f"B={b}: {c:.2f}" for b, c in curve.items()), file=sys.stderr)
    rows = []
    for name, (titles, lens) in STRUCTURES.items():
        serial, branches = block_script(e, titles, lens, lead="Parts:\n")
        serial += [e.model.eos]
        times = {"sequential": [], "parallel": []}
        runs = {}
        for _ in range(args.repeats):
            for mode in ("sequential", "parallel"):
                r = e.generate("Describe the parts.", mode=mode, processors=[Script(serial, branches)],
                               max_tokens=1000, keep=False)
                times[mode].append(r.stats.wall_s - r.stats.prompt_s)
                runs[mode] = r
        seq, par = runs["sequential"], runs["parallel"]
        t_seq, t_par = statistics.median(times["sequential"]), statistics.median(times["parallel"])
        ideal = predicted_ms(curve, seq.stats.batch_sizes) / predicted_ms(curve, par.stats.batch_sizes)
        row = {"structure": name, "tokens": par.stats.tokens, "identical": seq.tokens == par.tokens,
               "sequential_s": round(t_seq, 4), "parallel_s": round(t_par, 4),
               "decode_calls": {"sequential": seq.stats.decode_calls, "parallel": par.stats.decode_calls},
               "speedup": round(t_seq / t_par, 3), "ideal_speedup": round(ideal, 3),
               "efficiency": round((t_seq / t_par) / ideal, 3),
               "overhead_ms_per_step": {"sequential": round(seq.stats.overhead_ms_per_step, 3),
                                        "parallel": round(par.stats.overhead_ms_per_step, 3)}}
        if not row["identical"]:
            # where the schedules part, and how close the model's two best choices were there (docs/format.md section 8)
            i = next((j for j, (x, y) in enumerate(zip(seq.tokens, par.tokens)) if x != y),
                     min(len(seq.tokens), len(par.tokens)))
            rr = e.generate("Describe the parts.", mode="sequential", processors=[Script(serial, branches)],
                            max_tokens=1000, keep=False, record_margins=True)
            row["divergence"] = {"token_index": i, "top2_margin": rr.margins[i] if i < len(rr.margins) else None}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    report = {"model": path, "machine": machine_info(e), "cost_curve_ms": {str(k): round(v, 3) for k, v in curve.items()},
              "repeats": args.repeats, "rows": rows}
    e.close()
    print("| structure | tokens | sequential s | parallel s | speedup | ideal (cost curve) | efficiency | same tokens |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['structure']} | {r['tokens']} | {r['sequential_s']} | {r['parallel_s']} | {r['speedup']}x | "
              f"{r['ideal_speedup']}x | {r['efficiency']} | {r['identical']} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
