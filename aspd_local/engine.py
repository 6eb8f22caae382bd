"""The public API: an engine over one GGUF model. ``submit`` hands a request to the scheduler and returns
its handle, safe from any thread; ``generate``, ``stream`` and chat sessions are thin wrappers of it.
Requests run together: the scheduler puts every request's tokens into one ``llama_decode`` per step.

The CLI, the UI and the server are thin clients of this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from .aspd.tokens import ROLES, AspdTokens
from .chat import ChatFormat, Message
from .decoding.hybrid import HybridDecoder
from .decoding.prefill import prefill
from .errors import ContextOverflowError
from .events import Event, Result, Stats
from .kv import KvCache, Lane
from .llama import logs
from .llama.context import Context, ContextParams
from .llama.model import Model, ModelParams
from .params import GenerationParams, Mode
from .request import Job, Request
from .scheduler import Scheduler
from .step import Ask, Cancelled, ContextFull
from .speculation import Speculation
from .suffix.index import TokenIndex

log = logging.getLogger("aspd_local")


@dataclass
class EngineConfig:
    """How to load and run a model."""

    n_ctx: int = 4096
    n_batch: int = 512
    n_threads: int | None = None
    n_gpu_layers: int = -1  # -1: every layer on the GPU when llama.cpp has a GPU backend, else 0
    max_branches: int = 8
    n_slots: int = 4  # requests decoded together (each in its own slot); more wait in the queue
    max_queue: int = 64  # requests that may wait for a slot; beyond that, submit raises QueueFullError
    max_cached: int = 8  # finished conversations kept in the KV cache for prefix reuse (LRU)
    step_tokens: int = 256  # the token budget of one decode: running requests' tokens first, then prompt
    # chunks cut to fit, then drafts (a running request's own tokens always go in, up to n_batch)
    verbose: bool = False  # show llama.cpp's own log
    speculate: str = "suffix"  # default for requests: "suffix" (used only where the cost curve says it pays) or "none"
    max_draft_paths: int = 8  # sequence ids reserved for the leaf paths of draft trees
    suffix_alpha: float = 2.0  # speculation length per matched token (MAX_SPEC = alpha * p)
    suffix_min_token_prob: float = 0.1  # drop draft children with count(child) / count(parent) below this
    suffix_max_depth: int = 64  # longest match, and deepest speculation below it
    suffix_max_draft: int = 32  # most draft nodes per stream per step
    suffix_budget: str = "cost"  # "cost": draft sizes from this machine's cost curve; "all": every proposed node
    suffix_min_gain: float = 1.3  # "cost": draft only where the step's expected tokens per ms grow by this factor
    suffix_cache_tokens: int = 1_000_000  # global index bound (oldest outputs evicted first)
    suffix_cache: bool = True  # keep the global index on disk between runs


class Engine:
    """One model, one context, one KV cache shared by every request; a scheduler thread decodes them."""

    def __init__(self, model_path: str, config: EngineConfig | None = None, *,
                 aspd_tokens: AspdTokens | Mapping | Sequence | str | None = None,
                 chat_template: str | None = None, **overrides):
        cfg = config or EngineConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown engine option {k!r}")
            setattr(cfg, k, v)
        for name in ("n_slots", "max_branches", "step_tokens"):
            if getattr(cfg, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if cfg.max_queue < 0 or cfg.max_cached < 0:
            raise ValueError("max_queue and max_cached must be >= 0")
        self.config = cfg
        logs.set_verbose(cfg.verbose)
        n_seq = check_sequence_ids(cfg)  # before the model loads
        # each slot: a home sequence, then forks for branches and draft paths; then the cached lines
        self._seq_quota = max(2, cfg.max_branches) - 1 + cfg.max_draft_paths
        self.model = Model(model_path, ModelParams(n_gpu_layers=cfg.n_gpu_layers))
        try:
            self.aspd = self._resolve_aspd(aspd_tokens)
            self.ctx = Context(self.model, ContextParams(n_ctx=cfg.n_ctx, n_batch=cfg.n_batch, n_seq_max=n_seq,
                                                         n_threads=cfg.n_threads))
        except Exception:
            self.model.close()
            raise
        self.cache = KvCache(self.ctx)
        self.chat_format = ChatFormat(self.model, chat_template)
        self.notice = None
        self.scheduler = Scheduler(self.ctx, self.cache, n_slots=cfg.n_slots, seq_quota=self._seq_quota,
                                   max_queue=cfg.max_queue, max_cached=cfg.max_cached,
                                   step_tokens=min(cfg.step_tokens, self.ctx.n_batch))
        self._spec = Speculation(cfg, self.ctx, self.cache, self.scheduler)
        if cfg.speculate == "suffix" and cfg.suffix_budget == "cost":
            # drafts are sized by the cost curve: have it (from disk, or measured on the scheduler's
            # thread) before the first request, not inside its first step; other engines get it lazily
            try:
                self.cost_curve()
            except Exception as e:  # noqa: BLE001 - the engine still serves; the first speculation tries again
                log.warning("could not measure the cost curve at load (%s); the first speculative request "
                            "tries again", e)
        if self.aspd is None:
            self.notice = "this model has no ASPD tokens: it is served serially (no parallel blocks)"
            log.warning(self.notice)

    def _resolve_aspd(self, mapping) -> AspdTokens | None:
        if mapping is None:
            ids = AspdTokens.from_metadata(self.model.meta)
        elif isinstance(mapping, AspdTokens):
            ids = mapping
        else:
            sep = self.model.meta("aspd.title_separator")
            ids = AspdTokens.from_mapping(mapping, self.model.find_token, **({"separator": sep} if sep else {}))
        if ids is not None:
            ids.validate_against(self.model.n_vocab)
        return ids

    # -- info -----------------------------------------------------------------
    @property
    def has_aspd(self) -> bool:
        return self.aspd is not None

    def describe(self) -> dict:
        return {"model": self.model.path, "description": self.model.description, "n_params": self.model.n_params,
                "n_ctx": self.ctx.n_ctx, "n_slots": self.config.n_slots, "n_threads": self.ctx.n_threads, "n_gpu_layers": self.model.n_gpu_layers,
                "aspd": None if self.aspd is None else dict(zip(ROLES, self.aspd.ids)),
                "chat_template": "plain fallback" if self.chat_format.is_fallback else "from GGUF"}

    def tokenize(self, text: str) -> list[int]:
        return self.model.tokenize(text, add_special=False, parse_special=False)

    def prompt_tokens(self, prompt: str | Iterable[Mapping | Message], chat: bool = True) -> list[int]:
        """The tokens a prompt becomes: a chat (the template applied) or raw text (with BOS)."""
        if isinstance(prompt, str):
            if not chat:
                return self.model.tokenize(prompt, add_special=True, parse_special=False)
            prompt = [{"role": "user", "content": prompt}]
        return self.chat_format.prompt_tokens(prompt)

    # -- generation -----------------------------------------------------------
    def submit(self, prompt, params: GenerationParams | None = None, *, chat: bool = True, **kw) -> Request:
        """Queue a request and return its handle at once (safe from any thread). ``prompt`` is a user
        message, a list of chat messages, or token ids; ``params`` (or keywords, see GenerationParams)
        say how to answer. Iterate the handle for its events (``async for`` too), call ``result()``, or
        ``cancel()`` it. Raises QueueFullError when the queue is full, ContextOverflowError when the
        prompt cannot fit the context."""
        p = GenerationParams.of(params, **kw)
        tokens = list(prompt) if _is_token_list(prompt) else self.prompt_tokens(prompt, chat)
        return self._submit(tokens, p)

    def _submit(self, tokens: list[int], p: GenerationParams, on_commit=None) -> Request:
        if len(tokens) + 1 > self.ctx.n_ctx:
            raise ContextOverflowError(
                f"the prompt has {len(tokens)} tokens but the context holds {self.ctx.n_ctx} "
                f"(one more is needed to answer); shorten it or raise n_ctx")
        budget = p.max_tokens  # a hard cap: every answer token counts, control tokens included
        if (self.config.speculate if p.speculate is None else p.speculate) == "suffix":
            # (the cost curve comes from disk or is measured here, between two steps, never inside one)
            self.scheduler.drafts = self._spec.draft_policy()
        run = lambda lane, reused, cancelled: self._generation(lane, reused, cancelled, tokens, p, on_commit)  # noqa: E731
        unstarted = lambda: Result("", [], "cancelled", p.mode, [], Stats(prompt_tokens=len(tokens)))  # noqa: E731
        return self.scheduler.submit(Job(tokens, budget, run, "all" if p.keep else "prompt", unstarted))

    def cancel(self) -> None:
        """Stop every running and waiting request at its next step (``Request.cancel`` stops one)."""
        self.scheduler.cancel_all()

    def generate(self, prompt, params: GenerationParams | None = None, **kw) -> Result:
        """Decode an answer and return it (text, token stream, statistics)."""
        return self.submit(prompt, params, **kw).result()

    def stream(self, prompt, params: GenerationParams | None = None, **kw) -> Iterator[Event]:
        """The events of one answer. Closing the iterator early cancels the request."""
        return iter(self.submit(prompt, params, **kw))

    def _generation(self, lane: Lane, reused: int, is_cancelled, tokens: list[int], p: GenerationParams,
                    on_commit) -> Iterator:
        """The step function of one answer: prefill what the cache lacks, then decode."""
        t0 = time.perf_counter()
        speculate = self.config.speculate if p.speculate is None else p.speculate
        speculator = self._spec.speculator(tokens) if speculate == "suffix" else None
        t_spec = time.perf_counter() - t0  # indexing the prompt
        dec = HybridDecoder(self.model, lane, self.aspd, Mode(p.mode), p.sampling(), p.caps(), p.processors,
                            is_cancelled, p.record_margins, speculator, p.stop)
        st = dec.stats
        st.speculate_s += t_spec if speculator is not None else 0.0
        st.prompt_tokens, st.reused_prompt_tokens = len(tokens), reused
        completed = False
        try:
            row = yield from _counted(prefill(lane, tokens[reused:], self.aspd), st)
            st.prompt_s = time.perf_counter() - t0
            yield from dec.run(row)
            completed = True
        except Cancelled:
            dec.finish_reason = "cancelled"
        except ContextFull:  # the prompt found no room even alone (another process's cells, a full cache)
            dec.finish_reason = "context"
        st.wall_s = time.perf_counter() - t0
        result = dec.result()
        if completed:
            if speculator is not None:
                self._spec.remember(result.tokens)
            if on_commit is not None:
                on_commit(result)
        return result

    # -- speculation (aspd_local/speculation.py) -------------------------------
    def cost_curve(self) -> dict[int, float]:
        """ms per decode by batch size on this machine: from the cache file for this model, threads, GPU
        layers and machine, or measured (and cached) on the scheduler's thread between two steps."""
        return self._spec.cost_curve()

    def measure_cost_curve(self, sizes) -> dict[int, float]:
        """Measure ms per decode by batch size now (between two steps; nothing cached)."""
        return self._spec.measure(sizes)

    def use_cost_curve(self, curve: dict[int, float]) -> None:
        """Size drafts by ``curve`` (ms per decode by batch size) instead of the cached measurement."""
        self._spec.curve = dict(curve)

    def global_index(self) -> TokenIndex:
        """The index over earlier outputs (loaded from disk on first use when ``suffix_cache`` is on)."""
        return self._spec.global_index()

    def set_global_index(self, index: TokenIndex | None) -> TokenIndex | None:
        """Use ``index`` as the global index from now on (None: load or start one on next use); returns
        the one in use before. Benchmarks give each mode its own."""
        old, self._spec.index = self._spec.index, index
        return old

    # -- chat -----------------------------------------------------------------
    def session(self, system: str | None = None, history: Iterable[Mapping | Message] = ()) -> "ChatSession":
        return ChatSession(self, system, history)

    def check_cache(self) -> list[str]:
        """Differences between the engine's record of the KV cache and llama.cpp's, and sequence ids that no
        request or cached line holds (empty when clean)."""
        return self.scheduler.call(self._problems)

    def _problems(self) -> list[str]:
        out = self.cache.problems()
        owned = self.scheduler.owned_seqs()
        leaked = sorted(set(self.cache.lines) - owned)
        if leaked:
            out.append(f"sequence ids {leaked} are held by no request and no cached line")
        return out

    def cached_tokens(self) -> list[list[int]]:
        """The token streams kept in the KV cache for reuse, most recently used first."""
        return self.scheduler.cached_lines()

    def clear_cache(self) -> None:
        """Forget every cached conversation (running requests keep theirs)."""
        self.scheduler.clear_cached()

    def close(self) -> None:
        if self.ctx._ptr is None:
            return
        self.scheduler.close()
        self._spec.close()  # the last answers reach the disk before the engine is gone
        self.ctx.close()
        self.model.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def score(self, prefix_tokens: Sequence[int], continuation_tokens: Sequence[int], *,
              keep_prefix: bool = True) -> list[float]:
        """Log-probability of each continuation token after the prefix (natural log). The continuation is
        not kept in the cache; the prefix is, unless ``keep_prefix=False``: then the cache keeps only what
        it held before, and scoring several texts after one prefix decodes that prefix the same way each
        time, so equal texts get equal scores (the numerics of quantized kernels depend on how many tokens
        a decode call holds)."""
        from .decoding.score import score_after

        prefix, cont = list(prefix_tokens), list(continuation_tokens)
        if not prefix:
            raise ValueError("score needs a non-empty prefix")
        if len(prefix) + len(cont) > self.ctx.n_ctx:
            raise ContextOverflowError(f"scoring needs {len(prefix) + len(cont)} tokens of context but the "
                                       f"context holds {self.ctx.n_ctx}; raise n_ctx")

        def run(lane, reused, cancelled):
            return (yield from score_after(lane, self.aspd, prefix[reused:], cont))

        job = Job(prefix, len(cont) + 1, run, "all" if keep_prefix else "none")
        return self.scheduler.submit(job).result()


_MAX_SEQ = 256  # llama.cpp's LLAMA_MAX_SEQ


def check_sequence_ids(cfg: EngineConfig) -> int:
    """The llama.cpp sequence ids an engine of ``cfg`` uses (each slot: a home sequence, forks for branches
    and draft paths; then the cached lines). ValueError, before any model loads, when llama.cpp has fewer
    or the context has less than one cell per sequence (llama.cpp would abort the process)."""
    per_slot = max(2, cfg.max_branches) + cfg.max_draft_paths
    n_seq = cfg.n_slots * per_slot + cfg.max_cached
    if n_seq > _MAX_SEQ:
        raise ValueError(f"{cfg.n_slots} slots of {per_slot} sequence ids and {cfg.max_cached} cached lines need "
                         f"{n_seq} sequence ids; llama.cpp has {_MAX_SEQ}: lower the slots or the branches")
    if cfg.n_ctx < n_seq:
        raise ValueError(f"a context of {cfg.n_ctx} tokens is too small for {n_seq} sequence ids "
                         f"({cfg.n_slots} slots, up to {cfg.max_branches} branches): at least {n_seq}")
    return n_seq


def _counted(steps, stats) -> Iterator:
    """Pass a step function through, counting its decodes as the prompt's."""
    result = None
    try:
        while True:
            item = steps.send(result)
            result = yield item
            if isinstance(item, Ask):
                stats.prompt_decode_calls += 1
    except StopIteration as stop:
        return stop.value


def _is_token_list(x) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(t, int) for t in x)


from .session import ChatSession  # noqa: E402 - re-exported: Engine.session returns one
