"""Closed-loop load benchmark for any OpenAI-compatible server (``python -m aspd_local bench-load``).

For each concurrency C, C client threads send streaming chat completions one after another (each waits
for its previous answer: a closed loop), prompts taken round-robin, until the level's fixed number of
requests is done. Per request: time to first token (TTFT: send to the first chunk with non-empty text),
inter-token latencies (ITL: gaps between consecutive content chunks), completion tokens (the server's
``usage`` when it sends one with ``stream_options={"include_usage": true}``, else the content chunks),
wall time, finish reason, error. Per level: completion tokens/s of the whole level (all tokens / the
level's wall time), TTFT and ITL p50/p95, and tokens/s over the concurrency-1 figure.

Also: start a server as a subprocess and wait until ``GET /v1/models`` answers (:class:`ServerProcess`).
Greedy decoding (temperature 0) and a fixed ``max_tokens``; extra request fields go in ``extra_body``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import socket
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field

from ..errors import AspdLocalError

DEFAULT_MAX_TOKENS = 120
ENDPOINTS = ("chat", "completions")
# ``completions``: each prompt wrapped as aspd-local's chat fallback renders one user turn for a GGUF without
# a chat template (aspd_local.chat.PLAIN_TEMPLATE), so every server sees the same text whatever chat
# format it would pick on its own (llama-cpp-python falls back to llama-2's, llama-server to its own).
COMPLETION_TEMPLATE = "### User:\n{prompt}\n\n### Assistant:\n"


def default_requests(concurrency: int) -> int:
    """Requests per level unless given: every thread sends at least two."""
    return max(8, 2 * concurrency)


# ---------------------------------------------------------------------------------------------------------
# statistics (pure)


def percentile(values, q: float) -> float | None:
    """The q-th percentile (0..100), linear interpolation between closest ranks (numpy's default);
    None for no values."""
    xs = sorted(float(v) for v in values)
    if not xs:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class RequestRecord:
    """One request as the client saw it. Times in seconds; ``start``/``end`` from the level's start."""

    index: int
    worker: int
    prompt_index: int
    start: float
    end: float
    ttft: float | None = None
    itls: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    content_chunks: int = 0
    tokens_from_usage: bool = False
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    text_chars: int = 0

    @property
    def wall(self) -> float:
        return self.end - self.start

    @property
    def ok(self) -> bool:
        return self.error is None


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def aggregate_level(concurrency: int, records: list[RequestRecord], wall_s: float,
                    baseline_tps: float | None = None) -> dict:
    """The row of one concurrency level. Tokens and latencies count successful requests only; tokens/s is
    all their completion tokens over the level's wall time (first send to last answer)."""
    ok = [r for r in records if r.ok]
    tokens = sum(r.completion_tokens for r in ok)
    tps = tokens / wall_s if wall_s > 0 else 0.0
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    itls = [g for r in ok for g in r.itls]
    finish: dict[str, int] = {}
    for r in ok:
        key = r.finish_reason or "none"
        finish[key] = finish.get(key, 0) + 1
    errors = [r.error for r in records if not r.ok]
    return {
        "concurrency": concurrency,
        "requests": len(records),
        "ok": len(ok),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "wall_s": _r(wall_s, 3),
        "completion_tokens": tokens,
        "tokens_per_s": _r(tps, 3),
        "speedup_vs_c1": _r(tps / baseline_tps, 3) if baseline_tps else None,
        "requests_per_s": _r(len(ok) / wall_s, 4) if wall_s > 0 else None,
        "ttft_p50_s": _r(percentile(ttfts, 50)),
        "ttft_p95_s": _r(percentile(ttfts, 95)),
        "itl_p50_s": _r(percentile(itls, 50)),
        "itl_p95_s": _r(percentile(itls, 95)),
        "request_wall_p50_s": _r(percentile([r.wall for r in ok], 50), 3),
        "mean_completion_tokens": _r(tokens / len(ok), 2) if ok else None,
        "tokens_from_usage": bool(ok) and all(r.tokens_from_usage for r in ok),
        "finish_reasons": finish,
    }


def add_speedups(rows: list[dict]) -> None:
    """Fill ``speedup_vs_c1`` from the concurrency-1 row (None when there is none or it made no tokens)."""
    base = next((r["tokens_per_s"] for r in rows if r["concurrency"] == 1), None)
    for r in rows:
        r["speedup_vs_c1"] = round(r["tokens_per_s"] / base, 3) if base else None


def format_row(row: dict) -> str:
    def ms(x):
        return "-" if x is None else f"{x * 1000:.0f}ms"

    sp = "-" if row.get("speedup_vs_c1") is None else f"x{row['speedup_vs_c1']:.2f}"
    return (f"C={row['concurrency']:<3d} {row['tokens_per_s']:8.1f} tok/s ({sp:>6s} vs C=1)  "
            f"TTFT p50 {ms(row['ttft_p50_s'])} p95 {ms(row['ttft_p95_s'])}  "
            f"ITL p50 {ms(row['itl_p50_s'])} p95 {ms(row['itl_p95_s'])}  "
            f"{row['ok']}/{row['requests']} ok, {row['completion_tokens']} tokens in {row['wall_s']:.2f}s"
            + (f", {row['errors']} errors" if row["errors"] else ""))


# ---------------------------------------------------------------------------------------------------------
# prompts


def load_prompt_texts(path: str, limit: int | None = None) -> list[str]:
    """The ``prompt`` field of each JSONL row (the bench's prompt files)."""
    from .runner import load_prompts

    try:
        out = [row["prompt"] for row in load_prompts(path)][:limit]
    except OSError as e:
        raise AspdLocalError(f"cannot read prompts {path}: {e.strerror}") from None
    except (ValueError, TypeError) as e:
        raise AspdLocalError(str(e)) from None
    if not out:
        raise AspdLocalError(f"{path}: no prompts")
    return out


# ---------------------------------------------------------------------------------------------------------
# the client


def normalize_base(url: str) -> str:
    """``http://h:p``, ``http://h:p/``, ``http://h:p/v1`` -> ``http://h:p`` (the API is under /v1)."""
    url = url.rstrip("/")
    if url.endswith("/v1"):
        url = url[:-3]
    return url


def _client(base: str, api_key: str, timeout: float):
    import openai

    return openai.OpenAI(base_url=base + "/v1", api_key=api_key, max_retries=0, timeout=timeout)


def _is_rejection(exc: Exception) -> bool:
    import openai

    return isinstance(exc, openai.APIStatusError) and 400 <= exc.status_code < 500


def stream_one(client, model: str, prompt: str, max_tokens: int, extra_body: dict | None,
               include_usage: bool, t0: float, index: int = 0, worker: int = 0,
               prompt_index: int = 0, endpoint: str = "chat") -> RequestRecord:
    """Send one streaming request and time it: a chat completion of one user message, or (endpoint
    ``completions``) a text completion of the prompt as given. Exceptions are left to the caller."""
    kw = dict(model=model, max_tokens=max_tokens, temperature=0.0, stream=True)
    if endpoint == "chat":
        kw["messages"] = [{"role": "user", "content": prompt}]
        create = client.chat.completions.create
    elif endpoint == "completions":
        kw["prompt"] = prompt
        create = client.completions.create
    else:
        raise ValueError(f"endpoint must be one of {ENDPOINTS}, got {endpoint!r}")
    if include_usage:
        kw["stream_options"] = {"include_usage": True}
    if extra_body:
        kw["extra_body"] = extra_body
    start = time.perf_counter()
    rec = RequestRecord(index=index, worker=worker, prompt_index=prompt_index, start=start - t0, end=start - t0)
    last = None
    stream = create(**kw)
    try:
        for chunk in stream:
            now = time.perf_counter()
            usage = getattr(chunk, "usage", None)
            if usage is not None and getattr(usage, "completion_tokens", None) is not None:
                rec.completion_tokens = int(usage.completion_tokens)
                rec.prompt_tokens = getattr(usage, "prompt_tokens", None)
                rec.tokens_from_usage = True
            for choice in chunk.choices or []:
                if endpoint == "chat":
                    delta = getattr(choice, "delta", None)
                    text = getattr(delta, "content", None) if delta is not None else None
                else:
                    text = getattr(choice, "text", None)
                if text:
                    if last is None:
                        rec.ttft = now - start
                    else:
                        rec.itls.append(now - last)
                    last = now
                    rec.content_chunks += 1
                    rec.text_chars += len(text)
                if choice.finish_reason:
                    rec.finish_reason = choice.finish_reason
    finally:
        stream.close()
    rec.end = time.perf_counter() - t0
    if not rec.tokens_from_usage:
        rec.completion_tokens = rec.content_chunks
    return rec


def probe_usage(client, model: str, prompt: str, extra_body: dict | None, max_tokens: int = 8,
                endpoint: str = "chat") -> bool:
    """One short request (a warm-up too): does the server accept ``stream_options`` and send usage?
    A 4xx on the field means no; other errors propagate (the server is not usable)."""
    try:
        rec = stream_one(client, model, prompt, max_tokens, extra_body, True, time.perf_counter(), endpoint=endpoint)
    except Exception as e:  # noqa: BLE001 - which errors the server raises is its business
        if _is_rejection(e):
            stream_one(client, model, prompt, max_tokens, extra_body, False, time.perf_counter(), endpoint=endpoint)
            return False
        raise
    return rec.tokens_from_usage


def _error_text(e: BaseException) -> str:
    msg = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {msg}"[:300]


def run_level(base: str, model: str, prompts: list[str], concurrency: int, n_requests: int, max_tokens: int,
              extra_body: dict | None = None, include_usage: bool = True, api_key: str = "unused",
              timeout: float = 300.0, endpoint: str = "chat") -> tuple[list[RequestRecord], float]:
    """C threads, closed loop, until ``n_requests`` are done; returns the records (in send order) and the
    level's wall time."""
    if concurrency < 1 or n_requests < 1:
        raise ValueError("concurrency and requests must be >= 1")
    lock = threading.Lock()
    next_index = [0]
    records: list[RequestRecord] = []
    clients = [_client(base, api_key, timeout) for _ in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)
    t0_box = [0.0]

    def take() -> int | None:
        with lock:
            i = next_index[0]
            if i >= n_requests:
                return None
            next_index[0] += 1
            return i

    def worker(w: int) -> None:
        barrier.wait()
        t0 = t0_box[0]
        while (i := take()) is not None:
            p = i % len(prompts)
            start = time.perf_counter()
            try:
                rec = stream_one(clients[w], model, prompts[p], max_tokens, extra_body, include_usage, t0,
                                 index=i, worker=w, prompt_index=p, endpoint=endpoint)
            except Exception as e:  # noqa: BLE001 - an error is a result here
                now = time.perf_counter()
                rec = RequestRecord(index=i, worker=w, prompt_index=p, start=start - t0, end=now - t0,
                                    error=_error_text(e))
            with lock:
                records.append(rec)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True, name=f"load-{w}")
               for w in range(concurrency)]
    for t in threads:
        t.start()
    t0_box[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0_box[0]
    for c in clients:
        c.close()
    records.sort(key=lambda r: r.index)
    return records, wall


def list_models(base: str, api_key: str = "unused", timeout: float = 10.0) -> list[str]:
    import httpx

    r = httpx.get(base + "/v1/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)
    r.raise_for_status()
    return [m["id"] for m in r.json().get("data", [])]


def run_load(base_url: str, concurrency: list[int], prompts: list[str], requests: int | None = None,
             max_tokens: int = DEFAULT_MAX_TOKENS, extra_body: dict | None = None, model: str | None = None,
             label: str | None = None, api_key: str = "unused", timeout: float = 300.0,
             keep_requests: bool = True, log=None, endpoint: str = "chat",
             completion_template: str = COMPLETION_TEMPLATE) -> dict:
    """The whole benchmark against one server: a JSON-able report with settings and one row per level.
    One short request goes first, not counted: a warm-up, and the probe of ``stream_options``.
    ``endpoint="completions"`` sends each prompt through ``completion_template`` to /v1/completions."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {ENDPOINTS}, got {endpoint!r}")
    texts = prompts if endpoint == "chat" else [completion_template.format(prompt=p) for p in prompts]
    base = normalize_base(base_url)
    if model is None:
        ids = list_models(base, api_key)
        if not ids:
            raise AspdLocalError(f"{base}/v1/models lists no model")
        model = ids[0]
    client = _client(base, api_key, timeout)
    try:
        include_usage = probe_usage(client, model, texts[0], extra_body, endpoint=endpoint)
    finally:
        client.close()
    rows, per_request = [], {}
    for c in concurrency:
        n = requests if requests is not None else default_requests(c)
        records, wall = run_level(base, model, texts, c, n, max_tokens, extra_body, include_usage, api_key,
                                  timeout, endpoint)
        row = aggregate_level(c, records, wall)
        rows.append(row)
        add_speedups(rows)
        if keep_requests:
            per_request[str(c)] = [_record_json(r) for r in records]
        if log:
            log(format_row(row))
    add_speedups(rows)
    report = {
        "label": label or base,
        "base_url": base,
        "model": model,
        "settings": {
            "concurrency": list(concurrency),
            "requests_per_level": {str(c): (requests if requests is not None else default_requests(c))
                                   for c in concurrency},
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
            "endpoint": "/v1/chat/completions" if endpoint == "chat" else "/v1/completions",
            **({} if endpoint == "chat" else {"completion_template": completion_template}),
            "include_usage": include_usage,
            "extra_body": extra_body or {},
            "prompts": len(prompts),
            "warmup": "one 8-token request before the first level, not counted",
            "client": "openai " + _openai_version(),
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "levels": rows,
    }
    if keep_requests:
        report["requests"] = per_request
    return report


def _openai_version() -> str:
    try:
        import openai

        return openai.__version__
    except Exception:  # noqa: BLE001
        return "?"


def _record_json(r: RequestRecord) -> dict:
    d = asdict(r)
    d["wall"] = round(r.wall, 4)
    d["start"], d["end"] = round(r.start, 4), round(r.end, 4)
    d["ttft"] = _r(r.ttft)
    d["itls"] = [round(x, 5) for x in r.itls]
    return d


def summary_lines(report: dict) -> list[str]:
    s = report["settings"]
    head = (f"{report['label']}: {s['endpoint']}, model {report['model']}, max_tokens {s['max_tokens']}, "
            f"tokens counted from {'usage' if s['include_usage'] else 'content chunks'}")
    return [head] + ["  " + format_row(r) for r in report["levels"]]


# ---------------------------------------------------------------------------------------------------------
# combined reports


def append_to_report(path: str, block: dict) -> dict:
    """Add (or replace) this run's block in a combined report ``{"runs": {label: block}}``."""
    combined = {"runs": {}}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                combined = json.load(fh)
        except (OSError, ValueError) as e:
            raise AspdLocalError(f"--append-to: {path} is not a JSON report ({e})") from None
        if not isinstance(combined, dict) or not isinstance(combined.get("runs"), dict):
            raise AspdLocalError(f"--append-to: {path} is not a combined bench-load report (no \"runs\")")
    combined["runs"][block["label"]] = block
    combined["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    combined["summary"] = {label: [{k: r[k] for k in ("concurrency", "tokens_per_s", "speedup_vs_c1",
                                                      "ttft_p50_s", "itl_p50_s", "errors")}
                                   for r in b.get("levels", [])]
                           for label, b in combined["runs"].items()}
    write_json(path, combined)
    return combined


def write_json(path: str, data: dict) -> None:
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------
# servers as subprocesses


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server started from a command line, in its own process group; output to ``log_path``.

    ``start()`` waits until ``GET {base}/v1/models`` answers 200 (or the process dies, or ``timeout``
    passes: then it is stopped and AspdLocalError says why, with the log's tail) and sets ``model_id``.
    ``stop()`` sends SIGINT, then SIGTERM, then SIGKILL, to the group. Usable as a context manager."""

    def __init__(self, cmd: list[str], base_url: str, log_path: str, env: dict | None = None,
                 api_key: str = "unused"):
        self.cmd = list(cmd)
        self.base = normalize_base(base_url)
        self.log_path = log_path
        self.env = env
        self.api_key = api_key
        self.proc: subprocess.Popen | None = None
        self.model_id: str | None = None
        self.models: list[str] = []
        self.startup_s: float | None = None

    def start(self, timeout: float = 180.0) -> str:
        t0 = time.monotonic()
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, start_new_session=True)
        except OSError as e:
            raise AspdLocalError(f"cannot start {self.cmd[0]}: {e.strerror}") from None
        finally:
            log.close()
        deadline = t0 + timeout
        last_err = "no answer yet"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise AspdLocalError(f"the server exited with code {code} before answering /v1/models; "
                                     f"log {self.log_path}:\n{self.log_tail()}")
            try:
                ids = list_models(self.base, self.api_key, timeout=5.0)
                if ids:
                    self.models = ids
                    self.model_id = ids[0]
                    self.startup_s = time.monotonic() - t0
                    return self.model_id
                last_err = "/v1/models lists no model"
            except Exception as e:  # noqa: BLE001 - not up yet
                last_err = _error_text(e)
            if time.monotonic() > deadline:
                self.stop()
                raise AspdLocalError(f"the server did not answer {self.base}/v1/models within {timeout:.0f}s "
                                     f"({last_err}); log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.25)

    def log_tail(self, n: int = 15) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-n:]).rstrip()
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> int | None:
        p = self.proc
        if p is None:
            return None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if p.poll() is not None:
                break
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            try:
                p.wait(timeout=grace if sig != signal.SIGKILL else 5.0)
            except subprocess.TimeoutExpired:
                continue
        return p.poll()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_server(cmd: list[str], base_url: str, log_path: str, timeout: float = 180.0,
                 env: dict | None = None) -> ServerProcess:
    """Start ``cmd`` and wait until it serves ``{base_url}/v1/models``; returns the running ServerProcess
    (its ``model_id`` is the first listed model)."""
    s = ServerProcess(cmd, base_url, log_path, env=env)
    s.start(timeout)
    return s
