"""``python -m aspd_local ui``: the Gradio chat page, served locally (no share link, nothing fetched
from the internet)."""

from __future__ import annotations

import argparse
import socket
import sys

from ..errors import AspdLocalError
from ..extras import require
from .checks import integer
from .options import add_decoding_options, add_model_options, open_engine, sampling_kwargs


def add_parser(sub) -> None:
    p = sub.add_parser("ui", help="chat in the browser: branches side by side, filling in live")
    add_model_options(p)
    add_decoding_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=integer(1, 65535), default=7860, help="port")
    p.set_defaults(func=main)


def _check_port(host: str, port: int) -> None:
    """A taken port or an unknown host: one line now, before the model loads (Gradio would raise later)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(infos[0][4])
    except OSError as e:
        raise AspdLocalError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def main(args) -> int:
    require("ui", "ui (the chat page)")  # one line naming the extra when its packages are missing
    _check_port(args.host, args.port)
    from ..ui.catalog import default_model_target, known_models

    def progress(m: str) -> None:
        print(m, file=sys.stderr)

    default = default_model_target()

    def load(path: str):
        progress(f"loading {path} ...")
        opts = argparse.Namespace(**{**vars(args), "model": None if path == default else path})
        engine = open_engine(opts, progress=progress)
        if engine.notice:
            progress(f"note: {engine.notice}")
        return engine

    from ..ui import EngineHost
    from ..ui.app import build_app, launch

    models = known_models([args.model])
    host = EngineHost(load, models)  # the speedup estimate measures this machine's decode cost once (cached)
    settings = dict(mode=args.mode, max_tokens=args.max_tokens, **sampling_kwargs(args))
    demo = build_app(host, settings=settings)
    try:
        launch(demo, host=args.host, port=args.port, block=True)
    finally:
        host.close()
    return 0
