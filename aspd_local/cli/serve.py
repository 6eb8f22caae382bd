"""``python -m aspd_local serve [MODEL.gguf] --host 127.0.0.1 --port N``: the OpenAI-compatible server."""

from __future__ import annotations

import sys

from ..extras import require
from .checks import integer
from .options import add_decoding_options, add_model_options, open_engine, sampling_kwargs


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible local server (/v1/chat/completions, /v1/completions)")
    add_model_options(p)
    add_decoding_options(p)  # the defaults of requests that leave a field out
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=integer(0, 65535), default=8000, help="port (0 = any free port)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (info logs every request)")
    p.set_defaults(func=main)


def main(args) -> int:
    require("server", "serve")  # one line naming the extra when its packages are missing
    from ..server import Defaults, create_app, listen_socket, model_id_of
    from ..server.background import serve

    sock = listen_socket(args.host, args.port)  # before loading the model: a taken port fails at once
    try:
        engine = open_engine(args, progress=lambda m: print(m, file=sys.stderr))
    except BaseException:
        sock.close()
        raise
    try:
        if engine.notice:
            print(f"note: {engine.notice}", file=sys.stderr)
        defaults = Defaults(mode=args.mode, max_tokens=args.max_tokens, speculate=args.speculate,
                            **sampling_kwargs(args))
        # on Ctrl-C or SIGTERM: new requests get 503, running ones end with a final event (one line here
        # for each), then the server stops; a second signal exits at once
        app = create_app(engine, defaults=defaults, notify=lambda line: print(line, file=sys.stderr, flush=True))
        port = sock.getsockname()[1]
        print(f"serving {model_id_of(engine)} on http://{args.host}:{port}/v1 (Ctrl-C to stop)", file=sys.stderr,
              flush=True)
        try:
            serve(app, sock, log_level=args.log_level, stopped_at_once="server stopped at once (second signal)")
        except KeyboardInterrupt:  # (a Ctrl-C before uvicorn took the signals over)
            pass
        print("server stopped", file=sys.stderr, flush=True)
        return 0
    finally:
        sock.close()
        engine.close()
