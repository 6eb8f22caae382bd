"""Options shared by every command that loads a model."""

from __future__ import annotations

import argparse

from ..decoding.hybrid import Mode


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="GGUF file (default: the default model, set up on first use)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context size in tokens (default 4096)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--n-gpu-layers", type=int, default=-1,
                   help="layers to offload to the GPU; -1 = all when llama.cpp has a GPU backend (default)")
    p.add_argument("--max-branches", type=int, default=8, help="most branches per parallel block (default 8)")
    p.add_argument("--parallel", type=_positive, default=4, metavar="N",
                   help="requests decoded together, each in a slot; more wait in the queue (default 4)")
    p.add_argument("--queue", type=_non_negative, default=64, metavar="N",
                   help="requests that may wait for a slot; beyond that the server answers 503 (default 64)")
    p.add_argument("--aspd-tokens", default=None,
                   help="map the six ASPD control tokens onto existing tokens, comma-separated in the order "
                        "title_open,title_close,para_open,para_close,branch_open,branch_close "
                        "(ids or texts, e.g. '<unused0>,...,<unused5>'); default: from GGUF metadata")
    p.add_argument("--speculate", choices=["suffix", "none"], default="suffix",
                   help="suffix: model-free speculation from earlier text, used only where this machine's cost "
                        "curve says it pays (default); none: plain decoding")
    g = p.add_argument_group("suffix speculation")
    g.add_argument("--suffix-alpha", type=float, default=2.0,
                   help="draft nodes per matched token: a match of p tokens proposes at most alpha*p (default 2)")
    g.add_argument("--suffix-min-prob", type=float, default=0.1,
                   help="drop draft continuations seen in fewer than this share of the matches (default 0.1)")
    g.add_argument("--suffix-depth", type=int, default=64,
                   help="longest match, and deepest draft below it, in tokens (default 64)")
    g.add_argument("--suffix-budget", choices=["cost", "all"], default="cost",
                   help="cost: draft sizes from this machine's measured decode cost (default); all: verify every "
                        "proposed token (fits GPUs, where a bigger batch costs almost nothing)")
    g.add_argument("--suffix-cache-tokens", type=int, default=1_000_000,
                   help="bound of the global index over earlier answers, in tokens (default 1000000)")
    g.add_argument("--no-suffix-cache", action="store_true",
                   help="keep the global index in memory only (default: saved in the cache directory)")
    p.add_argument("--verbose", action="store_true", help="show llama.cpp's own log")


def add_decoding_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=[m.value for m in Mode], default="parallel",
                   help="ar: plain decoding; sequential: the ASPD structure, branches one after another; "
                        "parallel: branches batched (default)")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--min-p", type=float, default=0.05)
    p.add_argument("--repeat-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)


def sampling_kwargs(args) -> dict:
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                repeat_penalty=args.repeat_penalty, seed=args.seed)


def open_engine(args, progress=None):
    from ..engine import Engine
    from ..models import default_model_path

    path = args.model or str(default_model_path(progress))
    return Engine(path, n_ctx=args.n_ctx, n_threads=args.threads, n_gpu_layers=args.n_gpu_layers,
                  max_branches=args.max_branches, verbose=args.verbose, aspd_tokens=args.aspd_tokens,
                  speculate=args.speculate, n_slots=args.parallel, max_queue=args.queue, **suffix_kwargs(args))


def _positive(text: str) -> int:
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return v


def _non_negative(text: str) -> int:
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return v


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def suffix_kwargs(args) -> dict:
    """EngineConfig settings of suffix speculation, checked."""
    from ..errors import AspdLocalError

    if args.suffix_alpha <= 0:
        raise AspdLocalError("--suffix-alpha must be > 0")
    if not 0 <= args.suffix_min_prob <= 1:
        raise AspdLocalError("--suffix-min-prob must be in [0, 1]")
    if args.suffix_depth < 1 or args.suffix_cache_tokens < 0:
        raise AspdLocalError("--suffix-depth must be >= 1 and --suffix-cache-tokens >= 0")
    return dict(suffix_alpha=args.suffix_alpha, suffix_min_token_prob=args.suffix_min_prob,
                suffix_max_depth=args.suffix_depth, suffix_budget=args.suffix_budget,
                suffix_cache_tokens=args.suffix_cache_tokens, suffix_cache=not args.no_suffix_cache)
