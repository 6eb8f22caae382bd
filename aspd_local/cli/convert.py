"""``python -m aspd_local convert HF_DIR OUT.gguf``: a Hugging Face checkpoint to a GGUF the engine serves."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    from convert.writer import OUTTYPES

    p = sub.add_parser("convert", help="convert a Hugging Face checkpoint (optionally + a LoRA adapter) to GGUF")
    p.add_argument("hf_dir", help="Hugging Face model directory (config.json, safetensors, tokenizer)")
    p.add_argument("out", help="GGUF file to write")
    p.add_argument("--outtype", default="f16", choices=OUTTYPES, help="weight type (default f16)")
    p.add_argument("--lora", default=None, metavar="DIR", help="PEFT LoRA adapter directory to merge")
    p.add_argument("--aspd-tokens", default=None, metavar="T1,...,T6",
                   help="map the six ASPD tokens onto existing tokens (e.g. <unused0>,...,<unused5>), "
                        "which are renamed; default: find tokens named <|title|> ... <|/branch|>")
    p.add_argument("--position-mode", default="max_para", help="ASPD position mode recorded (default max_para)")
    p.add_argument("--title-separator", default=": ", help="text between a branch title and its content")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=main)


def main(args) -> int:
    from convert import convert_checkpoint

    out = convert_checkpoint(args.hf_dir, args.out, args.outtype, aspd_tokens=args.aspd_tokens,
                             position_mode=args.position_mode, title_separator=args.title_separator,
                             lora_dir=args.lora, progress=not args.quiet)
    print(f"[convert] wrote {out}", file=sys.stderr)
    return 0
