"""Entry point: ``python -m aspd_local {run,bench} ...``."""

from __future__ import annotations

import argparse
import sys

from ..errors import AspdLocalError
from . import bench, bench_load, convert, data, run, serve, setup, train, ui


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aspd_local",
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
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AspdLocalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
