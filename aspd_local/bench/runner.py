"""Run prompts through several modes, interleaved per prompt, and summarise speed and agreement."""

from __future__ import annotations

import json
import os
import platform
import sys
import time

from ..engine import Engine
from ..decoding.costcurve import measure_cost_curve, predicted_ms

# pairs of modes that must produce the same tokens under greedy decoding
AGREEING = {"parallel": "sequential"}


def load_prompts(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e})") from None
            if "prompt" not in row:
                raise ValueError(f"{path}:{n}: a row needs a 'prompt'")
            row.setdefault("id", str(n))
            row.setdefault("category", "")
            rows.append(row)
    return rows


def machine_info(engine: Engine) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": engine.ctx.n_threads, "platform": platform.platform(),
            "n_gpu_layers": engine.model.n_gpu_layers, "model": engine.model.description}


def _first_divergence(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def run_bench(engine: Engine, prompts: list[dict], modes: list[str], max_tokens: int, log=None) -> dict:
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    log("measuring the cost curve ...")
    curve = measure_cost_curve(engine.ctx, engine.book)
    log("cost curve (ms per decode): " + ", ".join(f"{b}: {c:.1f}" for b, c in curve.items()))
    results = []
    for i, row in enumerate(prompts):
        by_mode = {}
        for mode in modes:
            t0 = time.perf_counter()
            r = engine.generate(row["prompt"], mode=mode, max_tokens=max_tokens, keep=False)
            s = r.stats
            out = {"id": row["id"], "category": row.get("category", ""), "mode": mode, "text": r.text,
                   "tokens": s.tokens, "decode_calls": s.decode_calls, "wall_s": round(s.wall_s - s.prompt_s, 5),
                   "prompt_s": round(s.prompt_s, 5), "blocks": s.blocks, "branches": s.branches,
                   "finish_reason": r.finish_reason, "batch_sizes": {str(k): v for k, v in s.batch_sizes.items()},
                   "overhead_ms_per_step": round(s.overhead_ms_per_step, 4)}
            by_mode[mode] = (r, out)
            results.append(out)
            log(f"[{i + 1}/{len(prompts)}] {row['id']} {mode}: {s.tokens} tokens, {out['wall_s']:.2f}s, "
                f"{s.blocks} blocks ({time.perf_counter() - t0:.1f}s)")
        for mode, ref in AGREEING.items():
            if mode in by_mode and ref in by_mode:
                a, b = by_mode[ref][0].tokens, by_mode[mode][0].tokens
                idx = _first_divergence(a, b)
                if idx is not None:
                    # re-run the reference with margins recorded (not timed) to see how close the call was
                    rr = engine.generate(row["prompt"], mode=ref, max_tokens=max_tokens, keep=False,
                                         record_margins=True)
                    margin = rr.margins[idx] if idx < len(rr.margins) else None
                    by_mode[mode][1]["divergence"] = {"vs": ref, "token_index": idx, "top2_margin": margin}
    return {"machine": machine_info(engine), "cost_curve": {str(k): round(v, 3) for k, v in curve.items()},
            "max_tokens": max_tokens, "modes": modes, "results": results,
            "summary": summarize(results, modes, curve)}


def summarize(results: list[dict], modes: list[str], curve: dict[int, float]) -> dict:
    agg = {}
    for mode in modes:
        rows = [r for r in results if r["mode"] == mode]
        tok = sum(r["tokens"] for r in rows)
        wall = sum(r["wall_s"] for r in rows)
        calls = sum(r["decode_calls"] for r in rows)
        hist: dict[int, int] = {}
        for r in rows:
            for b, n in r["batch_sizes"].items():
                hist[int(b)] = hist.get(int(b), 0) + n
        agg[mode] = {"tokens": tok, "wall_s": round(wall, 4), "tokens_per_s": round(tok / wall, 3) if wall else 0.0,
                     "decode_calls": calls, "tokens_per_call": round(tok / calls, 4) if calls else 0.0,
                     "predicted_ms": round(predicted_ms(curve, hist), 2),
                     "divergences": sum(1 for r in rows if "divergence" in r),
                     "overhead_ms_per_step": round(sum(r["overhead_ms_per_step"] * r["decode_calls"] for r in rows)
                                                   / calls, 4) if calls else 0.0}
    for mode, a in agg.items():
        for ref in ("ar", "sequential"):
            if ref in agg and agg[ref]["tokens_per_s"]:
                a[f"speedup_vs_{ref}"] = round(a["tokens_per_s"] / agg[ref]["tokens_per_s"], 4)
    if "parallel" in agg and "sequential" in agg:
        p, s = agg["parallel"], agg["sequential"]
        ideal = (s["predicted_ms"] / s["tokens"]) / (p["predicted_ms"] / p["tokens"]) if p["tokens"] and s["tokens"] else 0
        p["ideal_speedup_vs_sequential"] = round(ideal, 4)
        p["efficiency"] = round(p.get("speedup_vs_sequential", 0) / ideal, 4) if ideal else None
    return agg
