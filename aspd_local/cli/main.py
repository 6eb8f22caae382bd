"""Entry point: ``python -m aspd_local {run,bench} ...``.

A bad command line, and any error the user can act on (AspdLocalError), is one line on stderr,
``error: ...``, and exit status 2; never a traceback."""

from __future__ import annotations

import os
import sys

from ..errors import AspdLocalError
from . import bench, bench_load, convert, data, run, serve, setup, train, ui
from .checks import CliParser

# packages only some commands need (a light install may lack them), imported by those commands when they run;
# the extras that bring them are in aspd_local.extras
OPTIONAL = {"torch", "transformers", "peft", "accelerate", "safetensors", "sentencepiece", "tokenizers", "gradio",
            "fastapi", "uvicorn", "starlette", "httpx", "openai"}


def build_parser() -> CliParser:
    p = CliParser(prog="python -m aspd_local",
                  description="Local LLM runtime on llama.cpp with ASPD serial-parallel decoding.")
    sub = p.add_subparsers(dest="command", required=True)
    run.add_parser(sub)
    ui.add_parser(sub)
    serve.add_parser(sub)
    bench.add_parser(sub)
    bench_load.add_parser(sub)
    setup.add_parser(sub)
    data.add_parser(sub)
    convert.add_parser(sub)
    train.add_parser(sub)
    return p


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        check = getattr(args, "check", None)
        if check is not None:
            check(args)  # what needs several options together; still before anything is loaded
        return int(args.func(args) or 0)
    except AspdLocalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # a command that did not check its extra first: still one line
        message = _missing_package(e.name or "")
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `... --json | head`: the reader left; say nothing more
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not fail too
        except (OSError, ValueError):
            pass
        return 1


def _missing_package(name: str) -> str | None:
    top = name.partition(".")[0]
    if top not in OPTIONAL:
        return None
    try:
        from ..extras import EXTRAS
    except ImportError:
        EXTRAS = {}
    extra = next((x for x, mods in EXTRAS.items() if top in mods), None)
    hint = f": pip install 'aspd-local[{extra}]'" if extra else f" (pip install {top})"
    return f"this command needs {top}, which is not installed{hint}"
