"""Options shared by every command that loads a model. Their defaults are EngineConfig's and
GenerationParams', read from there; every value is checked while the command line is parsed."""

from __future__ import annotations

import argparse

from ..params import Mode
from ..engine import EngineConfig
from ..errors import AspdLocalError
from ..params import SPECULATE, GenerationParams
from .checks import UsageError, aspd_tokens, base_name, gguf_file, integer, number

SUFFIX_BUDGETS = ("cost", "all")


def add_model_options(p: argparse.ArgumentParser) -> None:
    e = EngineConfig()
    p.add_argument("model", nargs="?", type=gguf_file,
                   help="GGUF file (default: the ASPD model of --base, set up on first use)")
    p.add_argument("--base", type=base_name, default=None, metavar="NAME",
                   help="without a model file: the ASPD model built on this base (aspd_local.bases: gemma3-270m, "
                        "the default, or smollm2-135m), set up on first use; the base itself while it has no delta")
    p.add_argument("--n-ctx", type=integer(1), default=e.n_ctx, metavar="N", help="context size in tokens")
    p.add_argument("--threads", type=integer(1), default=e.n_threads, metavar="N",
                   help="CPU threads (default: all cores)")
    p.add_argument("--n-gpu-layers", type=integer(-1), default=e.n_gpu_layers, metavar="N",
                   help="layers to offload to the GPU; -1 = all when llama.cpp has a GPU backend")
    p.add_argument("--max-branches", type=integer(1), default=e.max_branches, metavar="N",
                   help="most branches per parallel block")
    p.add_argument("--parallel", type=integer(1), default=e.n_slots, metavar="N",
                   help="requests decoded together, each in a slot; more wait in the queue")
    p.add_argument("--queue", type=integer(0), default=e.max_queue, metavar="N",
                   help="requests that may wait for a slot; beyond that the server answers 503")
    p.add_argument("--aspd-tokens", type=aspd_tokens, default=None, metavar="T1,...,T6",
                   help="map the six ASPD control tokens onto existing tokens, comma-separated in the order "
                        "title_open,title_close,para_open,para_close,branch_open,branch_close "
                        "(ids or texts, e.g. '<unused0>,...,<unused5>'); default: from GGUF metadata")
    p.add_argument("--speculate", choices=SPECULATE, default=e.speculate,
                   help="suffix: model-free speculation from earlier text, used only where this machine's cost "
                        "curve says it pays; none: plain decoding")
    g = p.add_argument_group("suffix speculation")
    g.add_argument("--suffix-alpha", type=number(0, lo_open=True), default=e.suffix_alpha, metavar="X",
                   help="draft nodes per matched token: a match of p tokens proposes at most alpha*p")
    g.add_argument("--suffix-min-prob", type=number(0, 1), default=e.suffix_min_token_prob, metavar="P",
                   help="drop draft continuations seen in fewer than this share of the matches")
    g.add_argument("--suffix-depth", type=integer(1), default=e.suffix_max_depth, metavar="N",
                   help="longest match, and deepest draft below it, in tokens")
    g.add_argument("--suffix-budget", choices=SUFFIX_BUDGETS, default=e.suffix_budget,
                   help="cost: draft sizes from this machine's measured decode cost; all: verify every "
                        "proposed token (fits GPUs, where a bigger batch costs almost nothing)")
    g.add_argument("--suffix-cache-tokens", type=integer(0), default=e.suffix_cache_tokens, metavar="N",
                   help="bound of the global index over earlier answers, in tokens")
    g.add_argument("--no-suffix-cache", action="store_true",
                   help="keep the global index in memory only (default: saved in the cache directory)")
    p.add_argument("--verbose", action="store_true", help="show llama.cpp's own log")
    p.set_defaults(check=check_model_options)


def add_decoding_options(p: argparse.ArgumentParser) -> None:
    d = GenerationParams()
    p.add_argument("--mode", choices=[m.value for m in Mode], default=d.mode,
                   help="ar: plain decoding; sequential: the ASPD structure, branches one after another; "
                        "parallel: branches batched")
    p.add_argument("--max-tokens", type=integer(1), default=d.max_tokens, metavar="N",
                   help="most tokens of an answer")
    p.add_argument("--temperature", type=number(0), default=d.temperature, metavar="T", help="0 = greedy")
    p.add_argument("--top-k", type=integer(0), default=d.top_k, metavar="K", help="0 = off")
    p.add_argument("--top-p", type=number(0, 1, lo_open=True), default=d.top_p, metavar="P", help="1 = off")
    p.add_argument("--min-p", type=number(0, 1, hi_open=True), default=d.min_p, metavar="P", help="0 = off")
    p.add_argument("--repeat-penalty", type=number(0, lo_open=True), default=d.repeat_penalty, metavar="X",
                   help="1 = off")
    p.add_argument("--seed", type=integer(), default=d.seed, metavar="N",
                   help="sampling seed (default: a random one)")


def sampling_kwargs(args) -> dict:
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                repeat_penalty=args.repeat_penalty, seed=args.seed)


def check_model_options(args) -> None:
    """What no single option can check, before any model is loaded: the sequence ids the slots and branches
    need (counted as Engine counts them), and a context with room for one token of each (llama.cpp aborts
    the process on a smaller one)."""
    from ..engine import check_sequence_ids

    try:
        check_sequence_ids(EngineConfig(n_ctx=args.n_ctx, n_slots=args.parallel, max_branches=args.max_branches))
    except ValueError as e:
        raise UsageError(f"{e} (--n-ctx, --parallel, --max-branches)") from None


def open_engine(args, progress=None):
    from ..engine import Engine
    from ..models import default_model_path

    path = args.model or str(default_model_path(progress, base=getattr(args, "base", None)))
    try:
        return Engine(path, n_ctx=args.n_ctx, n_threads=args.threads, n_gpu_layers=args.n_gpu_layers,
                      max_branches=args.max_branches, verbose=args.verbose, aspd_tokens=args.aspd_tokens,
                      speculate=args.speculate, n_slots=args.parallel, max_queue=args.queue, **suffix_kwargs(args))
    except ValueError as e:  # settings the engine refuses (checked above already): one line, not a traceback
        raise AspdLocalError(str(e)) from None


def suffix_kwargs(args) -> dict:
    """EngineConfig settings of suffix speculation (checked when parsed)."""
    return dict(suffix_alpha=args.suffix_alpha, suffix_min_token_prob=args.suffix_min_prob,
                suffix_max_depth=args.suffix_depth, suffix_budget=args.suffix_budget,
                suffix_cache_tokens=args.suffix_cache_tokens, suffix_cache=not args.no_suffix_cache)
