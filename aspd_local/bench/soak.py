"""Soak: many requests through the HTTP server at once, with cancels and dropped connections, then checks.

Clients (threads) send chat requests to an in-process server over the engine: random prompts and
``max_tokens``, mixed modes, speculation on, streamed or not; some clients cancel mid-answer (close the
event stream) and some give up on a non-streamed answer (their connection drops). Afterwards:

- no errors besides the intended cancels, drops and injected faults (``fault_rate``: a request whose
  step fails at a random token, which must end that request alone; ``refuse_rate``: a decode holding
  several requests' rows that llama.cpp "refuses" for want of room, which the scheduler must retry
  smaller without changing any answer);
- ``check_cache()`` finds nothing, no sequence id or cell is held by anything but the cached lines, and
  with those cleared the cache is empty;
- every completed greedy answer equals the answer the engine gives the same request alone, except where
  that answer had a near tie (``NEAR_TIE``), listed apart with its smallest margin.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import httpx

from ..engine import Engine
from ..llama.context import KvFull
from ..params import GenerationParams
from ..server import BackgroundServer, create_app, model_id_of

MODES = ("ar", "sequential", "parallel")
# A served answer that differs from the same request alone where the answer alone chose some token by a
# top-2 logit margin below this is a near tie, not a mismatch: llama.cpp's kernels round a row slightly
# differently by how many rows share its decode, on f16 too (margins of 0.009 and 0.012 seen; issue
# "The same answer every time"), and the served and the lone request decode in different company.
NEAR_TIE = 0.02
_FAULT_SEED = 1_000_000_000  # a planned fault asks with this seed plus its index (greedy: the seed changes nothing)


class InjectedFault(Exception):
    """The soak's own failure inside one request's step."""


@dataclass
class Outcome:
    index: int
    prompt: str
    mode: str
    max_tokens: int
    action: str  # "complete", "cancel" (closes the stream), "drop" (gives up on a non-streamed answer),
    # "fault" (its step fails at a random token)
    stream: bool
    status: int | None = None
    text: str = ""
    finish_reason: str | None = None
    ended: str = ""  # "completed", "cancelled", "dropped", "faulted", "error"
    error: str = ""
    seconds: float = 0.0


@dataclass
class SoakReport:
    requests: int
    concurrency: int
    slots: int
    seconds: float
    counts: dict = field(default_factory=dict)  # ended -> requests
    errors: list = field(default_factory=list)
    cache_problems: list = field(default_factory=list)
    leaks: list = field(default_factory=list)
    compared: int = 0
    mismatches: list = field(default_factory=list)
    near_ties: list = field(default_factory=list)  # differences where the answer alone had a near tie
    refused_decodes: int = 0  # decodes refused on purpose (refuse_rate)

    @property
    def ok(self) -> bool:
        return not (self.errors or self.cache_problems or self.leaks or self.mismatches)

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def plan(n: int, prompts: list[str], seed: int, max_tokens: tuple[int, int], cancel_rate: float,
         drop_rate: float, fault_rate: float = 0.0) -> list[Outcome]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        u = rng.random()
        action = ("cancel" if u < cancel_rate else "drop" if u < cancel_rate + drop_rate
                  else "fault" if u < cancel_rate + drop_rate + fault_rate else "complete")
        stream = action == "cancel" or (action == "complete" and rng.random() < 0.5)
        out.append(Outcome(i, rng.choice(prompts), rng.choice(MODES), rng.randint(*max_tokens), action, stream))
    return out


def _send(base: str, model: str, o: Outcome, rng: random.Random) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": o.prompt}], "max_tokens": o.max_tokens,
            "temperature": 0, "aspd_mode": o.mode, "speculate": True, "stream": o.stream}
    if o.action == "fault":
        body["seed"] = _FAULT_SEED + o.index
    url = base + "/v1/chat/completions"
    t0 = time.perf_counter()
    try:
        if o.stream:
            stop_after = rng.randint(1, 6) if o.action == "cancel" else None
            chunks = 0
            with httpx.stream("POST", url, json=body, timeout=600) as r:
                o.status = r.status_code
                if r.status_code != 200:
                    o.ended, o.error = "error", r.read().decode(errors="replace")[:300]
                    return
                for line in r.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        o.ended, o.error = "error", json.dumps(chunk)[:300]
                        return
                    for ch in chunk.get("choices", []):
                        o.text += (ch.get("delta") or {}).get("content") or ""
                        if ch.get("finish_reason"):
                            o.finish_reason = ch["finish_reason"]
                    chunks += 1
                    if stop_after is not None and chunks >= stop_after:
                        o.ended = "cancelled"
                        return  # leaving the block closes the connection mid-answer
            o.ended = "completed" if o.finish_reason else "error"
        else:
            timeout = rng.uniform(0.05, 0.6) if o.action == "drop" else 600
            try:
                r = httpx.post(url, json=body, timeout=timeout)
            except httpx.TimeoutException:
                o.ended = "dropped"
                return
            o.status = r.status_code
            if r.status_code != 200:
                o.ended, o.error = "error", r.text[:300]
                return
            choice = r.json()["choices"][0]
            o.text, o.finish_reason, o.ended = choice["message"]["content"], choice["finish_reason"], "completed"
    except Exception as e:  # a transport error the client did not ask for
        o.ended, o.error = "error", f"{type(e).__name__}: {e}"
    finally:
        o.seconds = time.perf_counter() - t0


def run_soak(engine: Engine, prompts: list[str], *, requests: int = 500, concurrency: int = 8, seed: int = 0,
             max_tokens: tuple[int, int] = (8, 96), cancel_rate: float = 0.1, drop_rate: float = 0.1,
             fault_rate: float = 0.0, refuse_rate: float = 0.0, compare: bool = True,
             progress: Callable[[str], None] | None = None) -> SoakReport:
    outcomes = plan(requests, prompts, seed, max_tokens, cancel_rate, drop_rate, fault_rate)
    app = create_app(engine, defaults=GenerationParams(speculate="suffix"))
    with _Faults(engine, seed, refuse_rate) as faults:
        rep = _drive(engine, app, outcomes, requests, concurrency, seed, progress)
    rep.refused_decodes = faults.refused
    return _check(engine, rep, outcomes, compare, progress)


class _Faults:
    """Injects the soak's faults into ``engine`` while it runs: a raising logits processor for the
    requests planned to fault, and refused decodes (llama.cpp's "no room") for a share of the steps that
    hold more than one request's rows."""

    def __init__(self, engine: Engine, seed: int, refuse_rate: float):
        self.e, self.rng, self.rate, self.refused = engine, random.Random(seed + 7), refuse_rate, 0

    def __enter__(self):
        e = self.e
        self.submit, self.decode = e.submit, e.ctx.decode

        def submit(prompt, params=None, **kw):
            p = GenerationParams.of(params, **kw)
            if p.seed is not None and p.seed >= _FAULT_SEED:
                at = random.Random(p.seed).randint(1, 12)

                def fail(info, logits):
                    if len(info.tokens) >= at:
                        raise InjectedFault(f"injected fault at token {at}")

                p = p.replace(processors=p.processors + (fail,))
            return self.submit(prompt, p)

        def decode(batch=None):
            if self.rate and sum(1 for lane in e.cache.lanes if lane.part.n) > 1 and self.rng.random() < self.rate:
                self.refused += 1
                raise KvFull()
            return self.decode(batch)

        e.submit, e.ctx.decode = submit, decode
        return self

    def __exit__(self, *exc):
        del self.e.submit, self.e.ctx.decode


def _drive(engine: Engine, app, outcomes: list[Outcome], requests: int, concurrency: int, seed: int,
           progress) -> SoakReport:
    model = model_id_of(engine)
    todo = list(outcomes)
    lock = threading.Lock()
    done = [0]
    t0 = time.perf_counter()
    with BackgroundServer(app, port=0) as server:
        base = server.url

        def client(k: int) -> None:
            rng = random.Random(seed * 1000 + k)
            while True:
                with lock:
                    if not todo:
                        return
                    o = todo.pop(0)
                _send(base, model, o, rng)
                with lock:
                    done[0] += 1
                    if progress and done[0] % 25 == 0:
                        progress(f"soak: {done[0]}/{requests} requests")

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 120
        while engine.scheduler.busy and time.monotonic() < deadline:  # cancels of dropped clients land
            time.sleep(0.05)
    return SoakReport(requests, concurrency, engine.config.n_slots, time.perf_counter() - t0)


def _check(engine: Engine, rep: SoakReport, outcomes: list[Outcome], compare: bool, progress) -> SoakReport:
    for o in outcomes:
        if o.action == "fault" and o.ended == "error" and "injected fault" in o.error:
            o.ended = "faulted"
        rep.counts[o.ended] = rep.counts.get(o.ended, 0) + 1
        if o.ended == "error" or (o.ended != "completed" and o.action == "complete"):
            rep.errors.append(asdict(o))
    if engine.scheduler.busy:
        rep.leaks.append("requests still running two minutes after the last client finished")
    rep.cache_problems = engine.check_cache()
    if len(engine.cached_tokens()) > engine.config.max_cached:
        rep.leaks.append(f"{len(engine.cached_tokens())} cached lines, more than max_cached")
    engine.clear_cache()
    if engine.cache.used_cells or engine.cache.lines:
        rep.leaks.append(f"{engine.cache.used_cells} cells and sequences {sorted(engine.cache.lines)} are held "
                         f"with nothing running and nothing cached")
    rep.cache_problems += engine.check_cache()
    if compare:
        for o in outcomes:
            if o.ended != "completed":
                continue
            alone = engine.generate(o.prompt, mode=o.mode, max_tokens=o.max_tokens, speculate="suffix",
                                    record_margins=True)
            rep.compared += 1
            if alone.text != o.text:
                low = min((m for m in alone.margins if m is not None), default=float("inf"))
                row = {"index": o.index, "prompt": o.prompt, "mode": o.mode, "max_tokens": o.max_tokens,
                       "served": o.text, "alone": alone.text, "min_margin": round(low, 5)}
                (rep.near_ties if low < NEAR_TIE else rep.mismatches).append(row)
            if progress and rep.compared % 25 == 0:
                progress(f"soak: {rep.compared} answers compared with the same request alone")
    return rep
