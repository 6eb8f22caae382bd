"""``python -m aspd_local setup``: prepare the default model in the user cache (once)."""

from __future__ import annotations

import sys

from ..models import default_model_path


def add_parser(sub) -> None:
    p = sub.add_parser("setup", help="prepare the default model (runs once; later calls are instant)")
    p.set_defaults(func=main)


def main(args) -> int:
    path = default_model_path(progress=lambda m: print(f"[setup] {m}", file=sys.stderr), verify=True)
    print(f"[setup] default model ready: {path}", file=sys.stderr)
    return 0
