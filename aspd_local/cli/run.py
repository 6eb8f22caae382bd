"""``python -m aspd_local run``: terminal chat, or one shot with ``--prompt``."""

from __future__ import annotations

import sys

from ..events import Done
from .options import add_decoding_options, add_model_options, open_engine, sampling_kwargs
from .render import TerminalRenderer, event_json, stats_line


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="chat in the terminal (branches fill in live)")
    add_model_options(p)
    add_decoding_options(p)
    p.add_argument("--prompt", metavar="TEXT", help="answer this one message and exit")
    p.add_argument("--json", action="store_true", help="print events and statistics as JSON lines")
    p.add_argument("--stats", action="store_true", help="print statistics after each answer")
    p.set_defaults(func=main)


def _answer(stream, args, renderer) -> None:
    for ev in stream:
        if args.json:
            print(event_json(ev), flush=True)
        else:
            renderer.handle(ev)
        if isinstance(ev, Done) and args.stats and not args.json:
            print(stats_line(ev.result), file=sys.stderr)


def main(args) -> int:
    engine = open_engine(args, progress=lambda m: print(m, file=sys.stderr))
    if engine.notice and not args.json:
        print(f"note: {engine.notice}", file=sys.stderr)
    kw = dict(mode=args.mode, max_tokens=args.max_tokens, **sampling_kwargs(args))
    renderer = TerminalRenderer()
    try:
        if args.prompt is not None:
            _answer(engine.stream(args.prompt, **kw), args, renderer)
            return 0
        session = engine.session()
        print("aspd-local chat. Ctrl-D to quit, Ctrl-C stops an answer.", file=sys.stderr)
        while True:
            try:
                text = input("\n> ")
            except EOFError:
                print(file=sys.stderr)
                return 0
            if not text.strip():
                continue
            stream = session.stream(text, **kw)
            try:
                _answer(stream, args, renderer)
            except KeyboardInterrupt:
                stream.close()  # cancels: the KV cache forgets the partial answer
                print("\n[stopped]", file=sys.stderr)
    finally:
        engine.close()
