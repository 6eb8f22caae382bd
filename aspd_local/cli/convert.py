"""``python -m aspd_local convert HF_DIR OUT.gguf``: a Hugging Face checkpoint to a GGUF the engine serves."""

from __future__ import annotations

import sys

from ..aspd.tokens import SUPPORTED_POSITION_MODES
from .checks import LazyChoices, aspd_tokens, existing_dir


def _outtypes():
    from convert.writer import OUTTYPES

    return OUTTYPES


def add_parser(sub) -> None:
    # the converter is imported only when this command runs (or its --outtype is checked): not for every command
    p = sub.add_parser("convert", help="convert a Hugging Face checkpoint (optionally + a LoRA adapter) to GGUF")
    p.add_argument("hf_dir", type=existing_dir,
                   help="Hugging Face model directory (config.json, safetensors, tokenizer)")
    p.add_argument("out", help="GGUF file to write")
    p.add_argument("--outtype", default="f16", choices=LazyChoices(_outtypes), metavar="TYPE",
                   help="weight type: %(choices)s")
    p.add_argument("--lora", type=existing_dir, default=None, metavar="DIR",
                   help="PEFT LoRA adapter directory to merge")
    p.add_argument("--aspd-tokens", type=aspd_tokens, default=None, metavar="T1,...,T6",
                   help="map the six ASPD tokens onto existing tokens (e.g. <unused0>,...,<unused5>), "
                        "which are renamed; default: find tokens named <|title|> ... <|/branch|>")
    # checked by the converter before it reads anything, with a message that says why the others cannot be served
    p.add_argument("--position-mode", default="max_para",
                   help=f"ASPD position mode recorded (supported: {', '.join(SUPPORTED_POSITION_MODES)})")
    p.add_argument("--title-separator", default=": ",
                   help="text between a branch title and its content (default: %(default)r)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=main)


def main(args) -> int:
    from convert import convert_checkpoint

    out = convert_checkpoint(args.hf_dir, args.out, args.outtype, aspd_tokens=args.aspd_tokens,
                             position_mode=args.position_mode, title_separator=args.title_separator,
                             lora_dir=args.lora, progress=not args.quiet)
    print(f"[convert] wrote {out}", file=sys.stderr)
    return 0
