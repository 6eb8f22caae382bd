"""How long one ``llama_decode`` takes for B tokens on this machine (B tokens in B sequences, as in a
parallel step), and what a run's mix of batch sizes should cost by that curve."""

from __future__ import annotations

import json
import logging
import os
import time

from ..kv import KvCache
from ..llama.context import Context

log = logging.getLogger("aspd_local")

DEFAULT_SIZES = (1, 2, 4, 8, 16)
DRAFT_SIZES = (1, 2, 4, 8, 16, 32)  # speculation verifies up to 32 draft nodes with a root


def measure_cost_curve(ctx: Context, cache: KvCache, sizes=DEFAULT_SIZES, repeats: int = 7,
                       prefix_len: int = 64) -> dict[int, float]:
    """Fastest of ``repeats`` decode calls, in ms, for each batch size, after a ``prefix_len``-token
    prefix. The sizes take turns (one call of each per round), so a burst of load from elsewhere hits
    all of them alike instead of one. Uses sequence ids of its own and leaves the cache as it found it
    (call it between two steps, on the scheduler's thread)."""
    filler = ctx.model.tokenize("The quick brown fox jumps over the lazy dog. " * 16)[:prefix_len]
    seqs = [cache.alloc() for _ in range(min(max(sizes), cache.free_seq_count))]
    times: dict[int, list[float]] = {b: [] for b in sizes}
    try:
        ctx.batch.clear()
        for i, t in enumerate(filler):
            ctx.batch.add(t, i, seqs, False)
        ctx.decode()
        for r in range(repeats + 1):
            for b in sizes:
                use = seqs[:min(b, len(seqs))]
                ctx.batch.clear()
                for i in range(b):
                    ctx.batch.add(filler[(i + r) % len(filler)], len(filler) + i // len(use), use[i % len(use)], True)
                t0 = time.perf_counter()
                ctx.decode()
                dt = time.perf_counter() - t0
                if r:  # the first round warms up
                    times[b].append(dt)
                for s in use:
                    ctx.seq_rm(s, len(filler), -1)
    finally:
        for s in seqs:
            cache.release(s)  # its cells were never in the mirror: releasing removes them from llama.cpp
    # the fastest call: other load on the machine only ever adds time
    return monotone({b: 1000 * min(ts) for b, ts in times.items()})


def monotone(curve: dict[int, float]) -> dict[int, float]:
    """More tokens never cost less: each point at least the one before (noise can say otherwise)."""
    out, top = {}, 0.0
    for b, c in sorted(curve.items()):
        top = max(top, c)
        out[b] = top
    return out


def cost_of(curve: dict[int, float], batch: int) -> float:
    """ms for one decode of ``batch`` tokens, interpolated linearly (extrapolated past the last point)."""
    pts = sorted(curve.items())
    if batch <= pts[0][0]:
        return pts[0][1] * batch / pts[0][0]
    for (b0, c0), (b1, c1) in zip(pts, pts[1:]):
        if batch <= b1:
            return c0 + (c1 - c0) * (batch - b0) / (b1 - b0)
    (b0, c0), (b1, c1) = pts[-2], pts[-1]
    return c1 + (c1 - c0) * (batch - b1) / (b1 - b0)


def predicted_ms(curve: dict[int, float], batch_sizes: dict[int, int]) -> float:
    """What a run's decode calls cost by the curve."""
    return sum(cost_of(curve, int(b)) * n for b, n in batch_sizes.items())


def plausible(curve: dict[int, float], slack: float = 1.25) -> bool:
    """Whether a measured curve looks like an idle machine's: no batch costs more than that many single
    decodes (with some slack)."""
    one = curve.get(1)
    return bool(one) and all(c <= slack * b * one for b, c in curve.items())


CACHE_FORMAT = 1
CACHE_MAX_AGE_S = 7 * 24 * 3600  # a curve older than this is measured again (llama.cpp, drivers, load change)


def curve_cache_key(model_path: str, n_threads: int, n_gpu_layers: int) -> dict:
    """What a cached curve is valid for: the model file (name, size, modification time), the thread
    count, the GPU layers, and the machine (host name, architecture, CPU count, llama.cpp bindings'
    version). Stored inside the cache file and compared field by field when it is read."""
    import platform

    import llama_cpp

    st = os.stat(model_path)
    return {"model": os.path.basename(model_path), "model_size": int(st.st_size), "model_mtime": int(st.st_mtime),
            "n_threads": int(n_threads), "n_gpu_layers": int(n_gpu_layers), "node": platform.node(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "llama_cpp": str(getattr(llama_cpp, "__version__", "unknown"))}


def curve_cache_file(folder: str, key: dict) -> str:
    """Where the curve for ``key`` is kept: one file per model, thread count and GPU layers (the machine
    fields are checked inside it; a file written elsewhere is measured again and replaced)."""
    return os.path.join(folder, f"{key['model']}-{key['model_size']}-{key['model_mtime']}"
                                f"-t{key['n_threads']}-g{key['n_gpu_layers']}.json")


def read_cached_curve(cache_file: str, key: dict, max_age_s: float = CACHE_MAX_AGE_S,
                      now: float | None = None) -> dict[int, float] | None:
    """The curve kept in ``cache_file`` if it is sound, was written for ``key`` and is not older than
    ``max_age_s``; else None (missing, damaged, foreign or stale: measure again)."""
    try:
        with open(cache_file) as fh:
            data = json.load(fh)
        if data.get("format") != CACHE_FORMAT or data.get("key") != key:
            return None
        age = (time.time() if now is None else now) - float(data["measured_at"])
        if not -86400 <= age <= max_age_s:  # too old, or written by a clock far ahead of this one
            return None
        curve = {int(k): float(v) for k, v in data["curve"].items()}
        if len(curve) >= 2 and all(v > 0 for v in curve.values()) and curve == monotone(curve) and plausible(curve):
            return curve
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        pass
    return None


def load_or_measure(ctx: Context, cache: KvCache, cache_file: str, key: dict,
                    max_age_s: float = CACHE_MAX_AGE_S) -> dict[int, float]:
    """The cost curve for ``key``: read from ``cache_file`` when it holds a sound, fresh curve measured
    for the same key, else measured now (``DRAFT_SIZES``) and written there with the key and the time.
    Measuring decodes: call it on the scheduler's thread, between two steps."""
    curve = read_cached_curve(cache_file, key, max_age_s)
    if curve is not None:
        return curve
    for _ in range(3):
        curve = measure_cost_curve(ctx, cache, DRAFT_SIZES)
        if plausible(curve):
            break
    else:
        # b tokens in one call never cost more than b calls of one token on an idle machine: this was
        # measured under heavy load. Use it now, measure again next time.
        return curve
    try:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        tmp = f"{cache_file}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            json.dump({"format": CACHE_FORMAT, "key": key, "measured_at": time.time(),
                       "curve": {str(k): v for k, v in curve.items()}}, fh)
        os.replace(tmp, cache_file)
    except OSError as e:
        log.warning("could not save the cost curve to %s: %s", cache_file, e)
    return curve
