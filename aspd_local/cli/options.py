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
    p.add_argument("--aspd-tokens", default=None,
                   help="map the six ASPD control tokens onto existing tokens, comma-separated in the order "
                        "title_open,title_close,para_open,para_close,branch_open,branch_close "
                        "(ids or texts, e.g. '<unused0>,...,<unused5>'); default: from GGUF metadata")
    p.add_argument("--speculate", choices=["suffix", "none"], default="suffix",
                   help="suffix: model-free speculation from earlier text, used only where this machine's cost "
                        "curve says it pays (default); none: plain decoding")
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
                  speculate=args.speculate)
