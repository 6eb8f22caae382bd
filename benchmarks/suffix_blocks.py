"""SuffixDecoding inside ASPD branches: forced blocks, ``parallel`` vs ``parallel+suffix``.

As in engine_blocks.py, Gemma 3 270M is driven through blocks with the ASPD tokens on <unused0..5>:
the serial script announces the titles, and each branch's content is chosen by the model itself
(greedy) for a fixed number of tokens. The prompt holds text the branches tend to repeat (lists to
restate, code to copy), the workload where suffix drafts pay. Both modes run interleaved, several
times, on one engine; the drafts are sized by the cost curve measured at the start of the run.

    .venv/bin/python benchmarks/suffix_blocks.py [MODEL.gguf] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from aspd_local import Engine
from aspd_local.bench.runner import machine_info
from aspd_local.bench.script import Script, block_script
from aspd_local.decoding.costcurve import DRAFT_SIZES
from aspd_local.models import default_model_path

UNUSED = "<unused0>,<unused1>,<unused2>,<unused3>,<unused4>,<unused5>"
PROMPT = ("Restate each of these lists in its own section.\n"
          "Fruits: apple, banana, cherry, damson, elderberry, fig, grape, honeydew\n"
          "Tools: hammer, wrench, screwdriver, pliers, saw, drill, chisel, level\n"
          "Cities: Paris, Berlin, Madrid, Rome, Vienna, Prague, Lisbon, Dublin\n"
          "Colours: red, orange, yellow, green, blue, indigo, violet, white\n")
STRUCTURES = {
    "2 x 32": (["Fruits", "Tools"], [32, 32]),
    "4 x 32": (["Fruits", "Tools", "Cities", "Colours"], [32] * 4),
    "4 uneven 8/16/32/48": (["Fruits", "Tools", "Cities", "Colours"], [8, 16, 32, 48]),
}
MODES = (("parallel", "none"), ("parallel+suffix", "suffix"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--n-gpu-layers", type=int, default=-1)
    ap.add_argument("--json", dest="out")
    args = ap.parse_args()
    path = args.model or str(default_model_path())
    e = Engine(path, aspd_tokens=UNUSED, max_branches=16, n_threads=args.threads, n_gpu_layers=args.n_gpu_layers,
               suffix_cache=False)
    curve = e.measure_cost_curve(DRAFT_SIZES)
    e.use_cost_curve(curve)
    print("cost curve ms/decode: " + ", ".join(f"B={b}: {c:.2f}" for b, c in curve.items()), file=sys.stderr)
    rows = []
    for name, (titles, lens) in STRUCTURES.items():
        serial, branches = block_script(e, titles, lens, lead="")
        serial += [e.model.eos]
        times = {m: [] for m, _ in MODES}
        runs = {}
        for _ in range(args.repeats):
            for mode, speculate in MODES:
                r = e.generate(PROMPT, mode="parallel", speculate=speculate, processors=[Script(serial, branches)],
                               max_tokens=1000, keep=False)
                times[mode].append(r.stats.wall_s - r.stats.prompt_s)
                runs[mode] = r
        plain, spec = runs["parallel"], runs["parallel+suffix"]
        t_plain, t_spec = statistics.median(times["parallel"]), statistics.median(times["parallel+suffix"])
        s = spec.stats
        row = {"structure": name, "tokens": spec.stats.tokens, "identical": plain.tokens == spec.tokens,
               "parallel_s": round(t_plain, 4), "parallel_suffix_s": round(t_spec, 4),
               "speedup": round(t_plain / t_spec, 3),
               "decode_calls": {"parallel": plain.stats.decode_calls, "parallel+suffix": s.decode_calls},
               "acceptance_rate": round(s.acceptance_rate, 3), "draft_tokens": s.draft_tokens,
               "speculate_ms_per_step": round(s.speculate_ms_per_step, 3),
               "decode_ms_per_step": round(1000 * s.decode_s / s.decode_calls, 3) if s.decode_calls else None,
               "batch_sizes": {str(k): v for k, v in sorted(s.batch_sizes.items())}}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    report = {"model": path, "machine": machine_info(e),
              "cost_curve_ms": {str(k): round(v, 3) for k, v in curve.items()},
              "repeats": args.repeats, "prompt": PROMPT, "rows": rows}
    e.close()
    print("| structure | tokens | parallel s | parallel+suffix s | speedup | decode calls | acceptance | same tokens |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["decode_calls"]
        print(f"| {r['structure']} | {r['tokens']} | {r['parallel_s']} | {r['parallel_suffix_s']} | {r['speedup']}x | "
              f"{c['parallel']} -> {c['parallel+suffix']} | {r['acceptance_rate']} | {r['identical']} |")
    if args.out:
        tmp = args.out + ".partial"
        with open(tmp, "w") as fh:
            json.dump(report, fh, indent=2)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
