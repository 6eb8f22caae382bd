"""``python -m aspd_local setup``: prepare the default model in the user cache (once).

``--base NAME`` prepares another registered base's ASPD model (``aspd_local.bases``; its delta in
``models/aspd-<base>/delta``). ``--delta DIR --out FILE.gguf`` builds any delta into a file of one's
choosing instead (e.g. a delta just trained into a temporary directory), without touching the cache's
models."""

from __future__ import annotations

import sys

from ..models import default_model_path
from .checks import LazyChoices, base_name, existing_dir
from .convert import _outtypes


def add_parser(sub) -> None:
    p = sub.add_parser("setup", help="prepare the default model (runs once; later calls are instant)")
    p.add_argument("--base", type=base_name, default=None, metavar="NAME",
                   help="the base whose ASPD model to prepare (aspd_local.bases: gemma3-270m, the default, "
                        "or smollm2-135m)")
    p.add_argument("--delta", type=existing_dir, default=None, metavar="DIR",
                   help="build this delta (with --out) instead of the base's shipped one")
    p.add_argument("--out", default=None, metavar="FILE.gguf", help="where --delta's model is written")
    p.add_argument("--outtype", default=None, choices=LazyChoices(_outtypes), metavar="TYPE",
                   help="weight type of --delta's model (default: the base's, q8_0)")
    p.set_defaults(func=main, check=_check)


def _check(args) -> None:
    from .checks import UsageError

    if (args.delta is None) != (args.out is None):
        raise UsageError("--delta and --out go together")
    if args.outtype is not None and args.delta is None:
        raise UsageError("--outtype applies to --delta's model only")


def main(args) -> int:
    def note(m):
        print(f"[setup] {m}", file=sys.stderr)

    if args.delta is not None:
        from .. import bases
        from ..build import build_gguf, load_manifest
        from ..models import base_model_path

        spec = bases.get(args.base) if args.base else (bases.for_manifest(load_manifest(args.delta)) or bases.get())
        base = base_model_path(note, base=spec.name)
        path = build_gguf(args.delta, args.out, base_gguf=base, outtype=args.outtype or spec.outtype)
        print(f"[setup] {spec.name} model built: {path}", file=sys.stderr)
        print(str(path))
        return 0
    from .. import bases
    from ..models import has_default_delta

    spec = bases.get(args.base)
    if not has_default_delta(spec.delta_dir):
        note(f"no delta in {spec.delta_dir} yet: the {spec.name} base model is used as it is (served serially); "
             f"train one with `python -m aspd_local train ... --base {spec.name} --delta {spec.delta_dir}`")
    path = default_model_path(progress=note, verify=True, base=args.base)
    print(f"[setup] {'default' if args.base is None else args.base} model ready: {path}", file=sys.stderr)
    return 0
