"""Run prompts through several modes, interleaved per prompt, and summarise speed and agreement.

Modes: ``ar``, ``sequential``, ``parallel`` (plain decoding, no speculation); the same with ``+suffix``
(SuffixDecoding; each such mode has its own global index, empty at the start of the run, so later
prompts profit from earlier answers as a long-running assistant would); and ``ar+lookup``, the peer:
llama-cpp-python's prompt-lookup decoding on the same model file and threads.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

from ..decoding.costcurve import DEFAULT_SIZES, DRAFT_SIZES, plausible, predicted_ms
from ..params import Mode
from ..engine import Engine
from ..suffix.index import TokenIndex

LOOKUP = "ar+lookup"


@dataclass(frozen=True)
class ModeSpec:
    name: str
    mode: str  # the decoder's mode
    speculate: str  # "none", "suffix" or "lookup"


def parse_modes(names: list[str]) -> list[ModeSpec]:
    """``ar``, ``parallel+suffix``, ``ar+lookup``, ...; raises ValueError on anything else."""
    out = []
    for name in names:
        if name == LOOKUP:
            out.append(ModeSpec(name, "ar", "lookup"))
            continue
        base, _, extra = name.partition("+")
        if extra not in ("", "suffix"):
            raise ValueError(f"unknown mode {name!r}: use ar, sequential, parallel, X+suffix or {LOOKUP}")
        try:
            Mode(base)
        except ValueError:
            raise ValueError(f"unknown mode {name!r}: use ar, sequential, parallel, X+suffix or {LOOKUP}") from None
        out.append(ModeSpec(name, base, "suffix" if extra else "none"))
    if len({m.name for m in out}) != len(out):
        raise ValueError("a mode is listed twice")
    return out


def agreeing(names: list[str]) -> dict[str, str]:
    """Pairs of modes that must produce the same tokens under greedy decoding: mode -> reference."""
    pairs = {"parallel": "sequential"}
    for n in names:
        if n.endswith("+suffix"):
            pairs[n] = n[: -len("+suffix")]
    pairs[LOOKUP] = "ar"
    return {m: r for m, r in pairs.items() if m in names and r in names}


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
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": engine.ctx.n_threads, "platform": platform.platform(),
            "n_gpu_layers": engine.model.n_gpu_layers, "model": engine.model.description,
            "load_average_at_start": [round(x, 2) for x in load] if load else None}


def _first_divergence(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _engine_row(engine: Engine, row: dict, spec: ModeSpec, max_tokens: int, sampling: dict,
                indexes: dict[str, TokenIndex]) -> tuple[list[int], dict]:
    if spec.speculate == "suffix":
        engine.set_global_index(indexes.setdefault(spec.name, TokenIndex(engine.config.suffix_max_depth)))
    r = engine.generate(row["prompt"], mode=spec.mode, max_tokens=max_tokens, keep=False,
                        speculate=spec.speculate, **sampling)
    s = r.stats
    return r.tokens, {
        "text": r.text, "tokens": s.tokens, "decode_calls": s.decode_calls, "wall_s": round(s.wall_s - s.prompt_s, 5),
        "prompt_s": round(s.prompt_s, 5), "decode_s": round(s.decode_s, 5), "blocks": s.blocks,
        "branches": s.branches, "repeated_titles": s.repeated_titles, "finish_reason": r.finish_reason,
        "titles": [list(b.titles) for b in r.blocks],
        "batch_sizes": {str(k): v for k, v in sorted(s.batch_sizes.items())},
        "overhead_ms_per_step": round(s.overhead_ms_per_step, 4),
        "draft_tokens": s.draft_tokens, "accepted_draft_tokens": s.accepted_draft_tokens,
        "acceptance_rate": round(s.acceptance_rate, 4), "tokens_per_call": round(s.tokens_per_call, 4),
        "speculate_ms_per_step": round(s.speculate_ms_per_step, 4)}


def _lookup_row(peer, engine: Engine, row: dict, max_tokens: int, sampling: dict) -> tuple[list[int], dict]:
    tokens = engine.prompt_tokens(row["prompt"])
    g = peer.generate(tokens, max_tokens, sampling.get("repeat_penalty", 1.0))
    n, calls = len(g["tokens"]), g["decode_calls"]
    text = engine.model.detokenize(g["tokens"])
    return g["tokens"], {
        "text": text, "tokens": n, "decode_calls": calls, "wall_s": round(g["wall_s"], 5),
        "prompt_s": round(g["prompt_s"], 5), "decode_s": round(g["decode_s"], 5), "blocks": 0, "branches": 0,
        "repeated_titles": 0,
        "finish_reason": g["finish_reason"], "batch_sizes": {str(k): v for k, v in sorted(g["batch_sizes"].items())},
        "overhead_ms_per_step": round(1000 * (g["wall_s"] - g["decode_s"]) / calls, 4) if calls else 0.0,
        "draft_tokens": g["draft_tokens"], "accepted_draft_tokens": g["accepted_draft_tokens"],
        "acceptance_rate": round(g["accepted_draft_tokens"] / g["draft_tokens"], 4) if g["draft_tokens"] else 0.0,
        "tokens_per_call": round(n / calls, 4) if calls else 0.0, "speculate_ms_per_step": None}


def run_bench(engine: Engine, prompts: list[dict], modes: list[str], max_tokens: int, log=None,
              sampling: dict | None = None, lookup_settings: dict | None = None) -> dict:
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    sampling = dict(sampling or {})
    specs = parse_modes(modes)
    speculating = any(s.speculate == "suffix" for s in specs)
    log("measuring the cost curve ...")
    for attempt in range(3):  # a burst of load from elsewhere can spoil a measurement: measure again
        curve = engine.measure_cost_curve(DRAFT_SIZES if speculating else DEFAULT_SIZES)
        if plausible(curve):
            break
        log("the cost curve looks disturbed by other load; measuring again ...")
    if speculating:
        engine.use_cost_curve(curve)  # the drafts are sized by the curve measured now, in this run
    log("cost curve (ms per decode): " + ", ".join(f"{b}: {c:.1f}" for b, c in curve.items()))
    peer = None
    if any(s.speculate == "lookup" for s in specs):
        from .lookup import PromptLookupPeer

        log("loading the prompt-lookup peer ...")
        peer = PromptLookupPeer(engine.model.path, n_ctx=engine.ctx.n_ctx, n_threads=engine.ctx.n_threads,
                                n_batch=engine.ctx.n_batch, n_gpu_layers=engine.config.n_gpu_layers,
                                eog_ids=engine.model.eog_ids, banned_ids=engine.model.control_ids,
                                **(lookup_settings or {}))
    pairs = agreeing([s.name for s in specs])
    indexes: dict[str, TokenIndex] = {}
    # each +suffix mode gets its own in-memory global index; the user's index on disk is left alone
    saved_index, saved_cache = engine.set_global_index(None), engine.config.suffix_cache
    engine.config.suffix_cache = False
    results = []
    try:
        for i, row in enumerate(prompts):
            by_mode = {}
            for spec in specs:
                t0 = time.perf_counter()
                if spec.speculate == "lookup":
                    toks, out = _lookup_row(peer, engine, row, max_tokens, sampling)
                else:
                    toks, out = _engine_row(engine, row, spec, max_tokens, sampling, indexes)
                out = {"id": row["id"], "category": row.get("category", ""), "mode": spec.name, **out}
                by_mode[spec.name] = (toks, out)
                results.append(out)
                extra = (f", {out['accepted_draft_tokens']}/{out['draft_tokens']} drafted accepted"
                         if spec.speculate != "none" else "")
                log(f"[{i + 1}/{len(prompts)}] {row['id']} {spec.name}: {out['tokens']} tokens, {out['wall_s']:.2f}s, "
                    f"{out['decode_calls']} calls{extra} ({time.perf_counter() - t0:.1f}s)")
            for mode, ref in pairs.items():
                a, b = by_mode[ref][0], by_mode[mode][0]
                idx = _first_divergence(a, b)
                if idx is not None:
                    # re-run the reference with margins recorded (not timed) to see how close the call was
                    ref_spec = next(s for s in specs if s.name == ref)
                    rr = engine.generate(row["prompt"], mode=ref_spec.mode, max_tokens=max_tokens, keep=False,
                                         record_margins=True, speculate="none", **sampling)
                    margin = rr.margins[idx] if idx < len(rr.margins) else None
                    by_mode[mode][1]["divergence"] = {"vs": ref, "token_index": idx, "top2_margin": margin}
    finally:
        engine.set_global_index(saved_index)
        engine.config.suffix_cache = saved_cache
        if peer is not None:
            peer.close()
    shown = {str(k): round(v, 3) for k, v in curve.items() if k in DEFAULT_SIZES}
    report = {"machine": machine_info(engine), "cost_curve": shown, "max_tokens": max_tokens, "modes": modes,
              "sampling": sampling, "results": results, "summary": summarize(results, modes, curve)}
    if speculating:
        report["cost_curve_drafts"] = {str(k): round(v, 3) for k, v in curve.items()}
        report["suffix"] = {k: getattr(engine.config, k) for k in
                            ("suffix_alpha", "suffix_min_token_prob", "suffix_max_depth", "suffix_max_draft",
                             "suffix_budget")}
    if peer is not None:
        report["lookup"] = peer.settings
    return report


def _prompt_ratios(results: list[dict], mode: str, ref: str) -> list[float]:
    """Per prompt: tokens per second of ``mode`` over that of ``ref``."""
    by = {(r["id"], r["mode"]): r for r in results}
    out = []
    for (pid, m), r in by.items():
        base = by.get((pid, ref))
        if m == mode and base and r["wall_s"] > 0 and base["wall_s"] > 0 and base["tokens"]:
            out.append((r["tokens"] / r["wall_s"]) / (base["tokens"] / base["wall_s"]))
    return out


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
        drafted = sum(r.get("draft_tokens", 0) for r in rows)
        accepted = sum(r.get("accepted_draft_tokens", 0) for r in rows)
        a = {"tokens": tok, "wall_s": round(wall, 4), "tokens_per_s": round(tok / wall, 3) if wall else 0.0,
             "decode_calls": calls, "tokens_per_call": round(tok / calls, 4) if calls else 0.0,
             "predicted_ms": round(predicted_ms(curve, hist), 2),
             "divergences": sum(1 for r in rows if "divergence" in r),
             "overhead_ms_per_step": round(sum(r["overhead_ms_per_step"] * r["decode_calls"] for r in rows)
                                           / calls, 4) if calls else 0.0}
        if drafted or "+" in mode:
            a["draft_tokens"] = drafted
            a["accepted_draft_tokens"] = accepted
            a["acceptance_rate"] = round(accepted / drafted, 4) if drafted else 0.0
        spec_rows = [r for r in rows if r.get("speculate_ms_per_step") is not None and "+suffix" in mode]
        if spec_rows and calls:
            spec_ms = sum(r["speculate_ms_per_step"] * r["decode_calls"] for r in spec_rows) / calls
            decode_s = sum(r.get("decode_s", 0.0) for r in rows)
            a["speculate_ms_per_step"] = round(spec_ms, 4)
            a["speculate_share_of_decode"] = round(spec_ms / (1000 * decode_s / calls), 4) if decode_s else None
        agg[mode] = a
    for mode, a in agg.items():
        for ref in ("ar", "sequential", "parallel"):
            if ref in agg and agg[ref]["tokens_per_s"] and mode != ref:
                a[f"speedup_vs_{ref}"] = round(a["tokens_per_s"] / agg[ref]["tokens_per_s"], 4)
                # robust to a burst of outside load hitting one row: the median of the per-prompt ratios
                ratios = _prompt_ratios(results, mode, ref)
                if ratios:
                    a[f"median_prompt_speedup_vs_{ref}"] = round(statistics.median(ratios), 4)
                # what the decode calls made should cost by the cost curve (no load at all)
                if a["predicted_ms"] and a["tokens"] and agg[ref]["tokens"]:
                    a[f"predicted_speedup_vs_{ref}"] = round((agg[ref]["predicted_ms"] / agg[ref]["tokens"])
                                                             / (a["predicted_ms"] / a["tokens"]), 4)
    if "parallel" in agg and "sequential" in agg:
        p, s = agg["parallel"], agg["sequential"]
        ideal = (s["predicted_ms"] / s["tokens"]) / (p["predicted_ms"] / p["tokens"]) if p["tokens"] and s["tokens"] else 0
        p["ideal_speedup_vs_sequential"] = round(ideal, 4)
        p["efficiency"] = round(p.get("speedup_vs_sequential", 0) / ideal, 4) if ideal else None
    return agg
