"""``python -m aspd_local bench-load``: closed-loop load on an OpenAI-compatible server (ours or a peer).

Either ``--url`` (a server already running) or ``--server KIND`` to start one on ``--model`` for the run:
``aspd`` (``python -m aspd_local serve``), ``llama-cpp-python`` (``python -m llama_cpp.server``, from the
venv ``benchmarks/peers.sh`` makes, with ``--interrupt_requests False`` so that a new request queues
instead of cutting the running one short), ``llama-server`` (llama.cpp's binary). ``--server-args`` go to
the server's command line as they are (e.g. ``"-np 4 -t 2"`` for llama-server, ``"--n_threads 2"`` for
llama-cpp-python, ``"--parallel 4"`` for ours)."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from importlib.resources import files

from ..errors import AspdLocalError
from .checks import (existing_file, http_url, int_list, integer, json_object, number, one_of, output_file,
                     shell_words)

KINDS = ("aspd", "llama-cpp-python", "llama-server")
ENDPOINTS = ("chat", "completions")
MAX_CONCURRENCY = 1024
PEERS = os.environ.get("ASPD_PEERS_DIR", "/tmp/peers")
DEFAULT_PROMPT_LIMIT = 8  # the bundled file: its first 8 prompts (list-style answers, long enough to time)


def add_parser(sub) -> None:
    p = sub.add_parser("bench-load", help="closed-loop load benchmark of an OpenAI-compatible server",
                       description=__doc__.split("\n\n")[0])
    where = p.add_argument_group("server (one of --url, --server)")
    where.add_argument("--url", type=http_url, default=None,
                       help="an already running server, e.g. http://127.0.0.1:8000")
    where.add_argument("--server", type=one_of(KINDS), default=None, metavar="KIND",
                       help=f"start this server for the run: {', '.join(KINDS)}")
    where.add_argument("--model", default=None, metavar="GGUF",
                       help="model file for --server (default: the base model, Gemma 3 270M Q4_K_M)")
    where.add_argument("--server-args", type=shell_words, default="", metavar="ARGS",
                       help="extra arguments for the server's command line, one string (shell-style quoting); "
                            "a single flag needs the = form: --server-args=--no-suffix-cache")
    where.add_argument("--llama-server", default=None, metavar="PATH",
                       help=f"llama-server binary (default $ASPD_LLAMA_SERVER, else {PEERS}/llama-server)")
    where.add_argument("--peer-python", default=None, metavar="PATH",
                       help="python with llama-cpp-python[server] for --server llama-cpp-python "
                            f"(default {PEERS}/lcp-venv/bin/python, made by benchmarks/peers.sh)")
    where.add_argument("--host", default="127.0.0.1", help="address the started server listens on")
    where.add_argument("--port", type=integer(0, 65535), default=0, help="its port (0: a free one)")
    where.add_argument("--startup-timeout", type=number(0, lo_open=True), default=300.0, metavar="S",
                       help="seconds to wait for GET /v1/models")
    where.add_argument("--server-log", type=output_file, default=None, metavar="FILE",
                       help="the started server's output (default: a file in the temp directory)")
    load = p.add_argument_group("load")
    load.add_argument("--concurrency", type=int_list(1, MAX_CONCURRENCY), default="1,2,4,8", metavar="C1,C2,...",
                      help="levels, comma-separated")
    load.add_argument("--requests", type=integer(1), default=None, metavar="N",
                      help="requests per level (default max(8, 2*C))")
    load.add_argument("--max-tokens", type=integer(1), default=120, metavar="N", help="max_tokens of each request")
    load.add_argument("--prompts", type=existing_file, default=None, metavar="FILE.jsonl",
                      help="rows with a \"prompt\" field, used round-robin (default: the bundled set's first "
                           f"{DEFAULT_PROMPT_LIMIT})")
    load.add_argument("--limit", type=integer(1), default=None, metavar="N", help="only the first N prompts")
    load.add_argument("--extra-body", type=json_object, default=None, metavar="JSON",
                      help="extra request fields, a JSON object, e.g. '{\"aspd_mode\": \"ar\", "
                           "\"speculate\": \"none\"}' for our server")
    load.add_argument("--endpoint", type=one_of(ENDPOINTS), default="chat", metavar="chat|completions",
                      help="chat: /v1/chat/completions, one user message, each server's own chat format; "
                           "completions: /v1/completions of the prompt wrapped in --template, the "
                           "same text for every server (a GGUF without a chat template gets a different "
                           "fallback format on each)")
    load.add_argument("--template", default=None, metavar="TEXT",
                      help="--endpoint completions: the prompt text around {prompt} (default: aspd-local's "
                           "fallback chat format, '### User:\\n{prompt}\\n\\n### Assistant:\\n'; in a shell, "
                           "$'...' quoting gives real newlines)")
    load.add_argument("--model-id", default=None, help="the request's model field (default: the first of /v1/models)")
    load.add_argument("--api-key", default="unused", help="the requests' API key")
    load.add_argument("--timeout", type=number(0, lo_open=True), default=600.0, metavar="S",
                      help="per-request timeout in seconds")
    out = p.add_argument_group("output")
    out.add_argument("--label", default=None, help="this run's name in reports (default: server kind and args)")
    out.add_argument("--json", dest="json_out", type=output_file, default=None, metavar="OUT",
                     help="write this run's report")
    out.add_argument("--append-to", type=output_file, default=None, metavar="REPORT.json",
                     help="add this run's block to a combined report keyed by label (made if missing)")
    out.add_argument("--no-requests", action="store_true", help="leave the per-request records out of the JSON")
    p.set_defaults(func=main)


# ---------------------------------------------------------------------------------------------------------
# validation: each value is checked when the command line is parsed (the type= functions above), what
# needs several options here, before anything starts; a bad one is one line and exit 2


def validate(args) -> dict:
    """Checked settings; raises AspdLocalError (one line) on any bad combination."""
    v: dict = {}
    if bool(args.url) == bool(args.server):
        raise AspdLocalError("give either --url (a running server) or --server KIND (one to start)")
    if args.url:
        for opt, val in (("--model", args.model), ("--server-args", args.server_args),
                         ("--llama-server", args.llama_server), ("--peer-python", args.peer_python)):
            if val:
                raise AspdLocalError(f"{opt} goes with --server, not --url")
    v["concurrency"] = args.concurrency
    v["requests"] = args.requests
    v["max_tokens"] = args.max_tokens
    v["port"] = args.port
    v["startup_timeout"] = args.startup_timeout
    v["timeout"] = args.timeout
    if args.template is not None:
        if args.endpoint != "completions":
            raise AspdLocalError("--template goes with --endpoint completions")
        if "{prompt}" not in args.template:
            raise AspdLocalError("--template must contain {prompt}")
        try:
            args.template.format(prompt="")
        except (KeyError, IndexError, ValueError) as e:
            raise AspdLocalError(f"--template: braces other than {{prompt}} must be doubled ({e})") from None
    v["server_args"] = list(args.server_args)
    v["extra_body"] = args.extra_body
    if args.prompts:
        v["prompts_path"], v["limit"] = args.prompts, args.limit
    else:
        v["prompts_path"] = str(files("aspd_local.resources").joinpath("bench_prompts.jsonl"))
        v["limit"] = args.limit or DEFAULT_PROMPT_LIMIT
    if args.model and not os.path.isfile(args.model):
        raise AspdLocalError(f"--model: no such file: {args.model}")
    if args.server == "llama-server":
        path = args.llama_server or os.environ.get("ASPD_LLAMA_SERVER") or os.path.join(PEERS, "llama-server")
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise AspdLocalError(f"llama-server binary not found or not executable: {path} "
                                 "(build it with: bash benchmarks/peers.sh llama-server, or pass --llama-server)")
        v["llama_server"] = path
    elif args.llama_server:
        raise AspdLocalError("--llama-server goes with --server llama-server")
    if args.server == "llama-cpp-python":
        py = args.peer_python or os.path.join(PEERS, "lcp-venv", "bin", "python")
        if not os.path.isfile(py):
            raise AspdLocalError(f"python for llama-cpp-python's server not found: {py} "
                                 "(make it with: bash benchmarks/peers.sh lcp, or pass --peer-python)")
        v["peer_python"] = py
    elif args.peer_python:
        raise AspdLocalError("--peer-python goes with --server llama-cpp-python")
    return v


def server_command(kind: str, model: str, host: str, port: int, server_args: list[str], v: dict) -> tuple[list[str], dict]:
    """The command line that starts ``kind`` on ``model`` at host:port, and notes for the report."""
    notes: dict = {}
    if kind == "aspd":
        cmd = [sys.executable, "-m", "aspd_local", "serve", model, "--host", host, "--port", str(port)]
    elif kind == "llama-cpp-python":
        cmd = [v["peer_python"], "-m", "llama_cpp.server", "--model", model, "--host", host, "--port", str(port)]
        if not any(a.startswith("--interrupt_requests") for a in server_args):
            # its default cuts a running stream short when another request arrives: no use under load
            cmd += ["--interrupt_requests", "False"]
        notes["interrupt_requests"] = _lcp_interrupt(cmd + server_args)
    else:
        cmd = [v["llama_server"], "-m", model, "--host", host, "--port", str(port)]
    return cmd + server_args, notes


def _lcp_interrupt(cmd: list[str]) -> bool:
    val = True
    for i, a in enumerate(cmd):
        if a == "--interrupt_requests" and i + 1 < len(cmd):
            val = cmd[i + 1].strip().lower() in ("1", "on", "t", "true", "y", "yes")
        elif a.startswith("--interrupt_requests="):
            val = a.split("=", 1)[1].strip().lower() in ("1", "on", "t", "true", "y", "yes")
    return val


def main(args) -> int:
    from ..bench.load import (ServerProcess, append_to_report, free_port, load_prompt_texts, run_load,
                              summary_lines, write_json)

    v = validate(args)
    prompts = load_prompt_texts(v["prompts_path"], v["limit"])
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    server = None
    server_info = None
    label = args.label
    base = args.url
    try:
        if args.server:
            from ..models import base_model_path

            model = os.path.abspath(args.model) if args.model else str(base_model_path(log))
            port = v["port"] or free_port(args.host)
            cmd, notes = server_command(args.server, model, args.host, port, v["server_args"], v)
            log_path = args.server_log or os.path.join(
                tempfile.gettempdir(), f"aspd-bench-load-{args.server}-{os.getpid()}.log")
            label = label or " ".join([args.server] + v["server_args"])
            log(f"starting {args.server}: {shlex.join(cmd)}  (log {log_path})")
            server = ServerProcess(cmd, f"http://{args.host}:{port}", log_path, api_key=args.api_key)
            server.start(v["startup_timeout"])
            log(f"{args.server} up in {server.startup_s:.1f}s, model id {server.model_id!r}")
            base = server.base
            server_info = {"kind": args.server, "command": cmd, "model_file": model, "startup_s":
                           round(server.startup_s, 2), "log": log_path, **notes}
        else:
            base = args.url
            label = label or args.url
        report = run_load(base, v["concurrency"], prompts, requests=v["requests"], max_tokens=v["max_tokens"],
                          extra_body=v["extra_body"], model=args.model_id, label=label, api_key=args.api_key,
                          timeout=v["timeout"], keep_requests=not args.no_requests, log=log,
                          endpoint=args.endpoint, **({"completion_template": args.template} if args.template else {}))
    except Exception as e:
        if isinstance(e, AspdLocalError):
            raise
        import httpx
        import openai

        if isinstance(e, (httpx.HTTPError, openai.APIError)):
            raise AspdLocalError(f"the server at {base} failed: {type(e).__name__}: {e}") from None
        raise
    finally:
        if server is not None:
            code = server.stop()
            log(f"{args.server} stopped (exit code {code})")
    report["server"] = server_info or {"kind": "external", "url": args.url}
    report["settings"]["prompts_file"] = os.path.basename(v["prompts_path"])
    for line in summary_lines(report):
        print(line)
    if args.json_out:
        write_json(args.json_out, report)
        log(f"report written to {args.json_out}")
    if args.append_to:
        append_to_report(args.append_to, report)
        log(f"run {report['label']!r} added to {args.append_to}")
    return 0
