"""The public API: an engine over one GGUF model, with ``generate``, ``stream`` and chat sessions.

The CLI, the UI and the server are thin clients of this module.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from .aspd.tokens import ROLES, AspdTokens
from .chat import ChatFormat, Message
from .decoding.hybrid import Cancelled, Caps, HybridDecoder, Mode
from .decoding.costcurve import cached_cost_curve, cost_of
from .decoding.prefill import prefill
from .decoding.speculative import Speculator
from .errors import ContextOverflowError
from .events import Done, Event, Result
from .kv import KvBook
from .llama import logs
from .llama.context import Context, ContextParams
from .llama.model import Model, ModelParams
from .models import cache_dir
from .sampling import LogitsProcessor, SamplingParams
from .suffix.acceptance import AcceptanceModel
from .suffix.cache import load_index, save_index
from .suffix.index import TokenIndex
from .suffix.proposer import SuffixProposer

log = logging.getLogger("aspd_local")


@dataclass
class EngineConfig:
    """How to load and run a model."""

    n_ctx: int = 4096
    n_batch: int = 512
    n_threads: int | None = None
    n_gpu_layers: int = -1  # -1: every layer on the GPU when llama.cpp has a GPU backend, else 0
    max_branches: int = 8
    verbose: bool = False  # show llama.cpp's own log
    speculate: str = "suffix"  # default for requests: "suffix" (used only where the cost curve says it pays) or "none"
    max_draft_paths: int = 8  # sequence ids reserved for the leaf paths of draft trees
    suffix_alpha: float = 2.0  # speculation length per matched token (MAX_SPEC = alpha * p)
    suffix_min_token_prob: float = 0.1  # drop draft children with count(child) / count(parent) below this
    suffix_max_depth: int = 64  # longest match, and deepest speculation below it
    suffix_max_draft: int = 32  # most draft nodes per stream per step
    suffix_budget: str = "cost"  # "cost": draft sizes from this machine's cost curve; "all": every proposed node
    suffix_cache_tokens: int = 1_000_000  # global index bound (oldest outputs evicted first)
    suffix_cache: bool = True  # keep the global index on disk between runs


class Engine:
    """One model, one context, one KV cache; requests run one at a time (others wait)."""

    def __init__(self, model_path: str, config: EngineConfig | None = None, *,
                 aspd_tokens: AspdTokens | Mapping | Sequence | str | None = None,
                 chat_template: str | None = None, **overrides):
        cfg = config or EngineConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown engine option {k!r}")
            setattr(cfg, k, v)
        self.config = cfg
        logs.set_verbose(cfg.verbose)
        self.model = Model(model_path, ModelParams(n_gpu_layers=cfg.n_gpu_layers))
        try:
            self.aspd = self._resolve_aspd(aspd_tokens)
            self.ctx = Context(self.model, ContextParams(n_ctx=cfg.n_ctx, n_batch=cfg.n_batch,
                                                         n_seq_max=max(2, cfg.max_branches) + cfg.max_draft_paths,
                                                         n_threads=cfg.n_threads))
        except Exception:
            self.model.close()
            raise
        self.book = KvBook(self.ctx)
        self.chat_format = ChatFormat(self.model, chat_template)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self.notice = None
        self._cost_curve: dict[int, float] | None = None
        self._global_index: TokenIndex | None = None
        self._acceptance = AcceptanceModel()
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
                "n_ctx": self.ctx.n_ctx, "n_threads": self.ctx.n_threads, "n_gpu_layers": self.model.n_gpu_layers,
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
    def cancel(self) -> None:
        """Stop the running request at its next step; the KV cache is rolled back cleanly."""
        self._cancel.set()

    def generate(self, prompt, **kw) -> Result:
        """Decode an answer and return it (text, token stream, statistics)."""
        result = None
        for ev in self.stream(prompt, **kw):
            if isinstance(ev, Done):
                result = ev.result
        return result

    def stream(self, prompt, *, mode: str | Mode = Mode.PARALLEL, max_tokens: int = 512,
               sampling: SamplingParams | None = None, caps: Caps | None = None, chat: bool = True,
               processors: Sequence[LogitsProcessor] = (), record_margins: bool = False,
               keep: bool = True, speculate: str | None = None, **sampling_kw) -> Iterator[Event]:
        """Stream the events of one answer. ``prompt`` is a user message, a list of chat messages,
        or token ids. Closing the iterator early cancels the request and cleans the KV cache.

        ``keep=False`` removes the answer from the KV cache afterwards (the prompt stays cached).
        ``speculate``: "suffix" or "none" (default: the engine's ``config.speculate``).
        """
        tokens = list(prompt) if _is_token_list(prompt) else self.prompt_tokens(prompt, chat)
        return self._run(tokens, mode=mode, max_tokens=max_tokens, sampling=sampling, caps=caps,
                         processors=processors, record_margins=record_margins, keep=keep, speculate=speculate,
                         sampling_kw=sampling_kw)

    def _run(self, tokens: list[int], *, mode, max_tokens, sampling, caps, processors, record_margins, keep,
             sampling_kw, speculate=None, on_commit=None) -> Iterator[Event]:
        sampling = sampling or SamplingParams(**sampling_kw)
        caps = caps or Caps(max_tokens=max_tokens)
        mode = Mode(mode)
        speculate = self.config.speculate if speculate is None else speculate
        if speculate not in ("suffix", "none"):
            raise ValueError(f"speculate must be 'suffix' or 'none', got {speculate!r}")
        with self._lock:
            self._cancel.clear()
            t_spec = time.perf_counter()
            speculator = self._speculator(tokens) if speculate == "suffix" else None
            t_spec = time.perf_counter() - t_spec  # indexing the prompt (and measuring the cost curve, once)
            t0 = time.perf_counter()
            book = self.book
            reused = self._reuse_prefix(tokens)
            start_mark = book.mark()
            calls0 = self.ctx.decode_calls
            try:
                row = prefill(self.ctx, book, tokens[reused:], self.aspd)
            except BaseException:
                book.rollback(start_mark)
                raise
            answer_mark = book.mark()
            dec = HybridDecoder(self.model, self.ctx, book, self.aspd, mode, sampling, caps, processors,
                                self._cancel.is_set, record_margins, speculator)
            if speculator is not None:
                dec.stats.speculate_s += t_spec
            dec.stats.prompt_tokens = len(tokens)
            dec.stats.reused_prompt_tokens = reused
            dec.stats.prompt_decode_calls = self.ctx.decode_calls - calls0
            dec.stats.prompt_s = time.perf_counter() - t0
            completed = False
            try:
                yield from dec.run(row)
                completed = True
            except Cancelled:
                dec.finish_reason = "cancelled"
            finally:
                if not completed:
                    # cancelled, closed by the consumer, or failed: the cache forgets this request
                    book.rollback(start_mark)
            dec.stats.wall_s = time.perf_counter() - t0
            result = dec.result()
            if completed:
                if speculator is not None:
                    self._remember(result.tokens)
                if on_commit is not None:
                    on_commit(result)
                if not keep:
                    book.rollback(answer_mark)
            yield Done(result)

    # -- speculation ----------------------------------------------------------
    def _model_key(self) -> str:
        st = os.stat(self.model.path)
        name = os.path.basename(self.model.path)
        return f"{name}-{st.st_size}-{int(st.st_mtime)}"

    def cost_curve(self) -> dict[int, float]:
        """ms per decode by batch size on this machine, measured once per model and thread count (cached on
        disk). Measuring clears the KV cache."""
        if self._cost_curve is None:
            path = os.path.join(cache_dir(), "costcurve", f"{self._model_key()}-t{self.ctx.n_threads}"
                                f"-g{self.model.n_gpu_layers}.json")
            self._cost_curve = cached_cost_curve(self.ctx, self.book, path)
        return self._cost_curve

    def use_cost_curve(self, curve: dict[int, float]) -> None:
        """Size drafts by ``curve`` (ms per decode by batch size) instead of the cached measurement."""
        self._cost_curve = dict(curve)

    def _global_index_path(self) -> str:
        return os.path.join(cache_dir(), "suffix", f"{self._model_key()}.npz")

    def global_index(self) -> TokenIndex:
        """The index over earlier outputs (loaded from disk on first use when ``suffix_cache`` is on)."""
        if self._global_index is None:
            cfg = self.config
            self._global_index = (load_index(self._global_index_path(), cfg.suffix_max_depth,
                                             model_key=self._model_key(), n_vocab=self.model.n_vocab,
                                             max_tokens=cfg.suffix_cache_tokens)
                                  if cfg.suffix_cache else TokenIndex(cfg.suffix_max_depth))
        return self._global_index

    def set_global_index(self, index: TokenIndex | None) -> TokenIndex | None:
        """Use ``index`` as the global index from now on (None: load or start one on next use); returns
        the one in use before. Benchmarks give each mode its own."""
        old, self._global_index = self._global_index, index
        return old

    def _speculator(self, prompt: list[int]) -> Speculator:
        cfg = self.config
        if cfg.suffix_budget == "cost":
            curve = self.cost_curve()
            cost = lambda n: cost_of(curve, n)  # noqa: E731
        elif cfg.suffix_budget == "all":
            cost = lambda n: float(n)  # noqa: E731 - unused: every proposed node is verified
        else:
            raise ValueError(f"suffix_budget must be 'cost' or 'all', got {cfg.suffix_budget!r}")
        proposer = SuffixProposer(self.global_index(), cfg.suffix_alpha, cfg.suffix_min_token_prob,
                                  cfg.suffix_max_depth)
        spec = Speculator(proposer, cost, self._acceptance, cfg.suffix_max_draft, cfg.suffix_budget)
        spec.begin(prompt)
        return spec

    def _remember(self, answer: list[int]) -> None:
        """Add an answer to the global index, keep it bounded, and save it."""
        if not answer:
            return
        cfg = self.config
        index = self.global_index()
        index.add_sequence(answer)
        if index.n_tokens > cfg.suffix_cache_tokens:
            # evict down to 90% of the bound, so the rebuild happens once per many requests, not every one
            index.evict(max_tokens=int(cfg.suffix_cache_tokens * 0.9))
        if cfg.suffix_cache:
            try:
                save_index(index, self._global_index_path(), model_key=self._model_key())
            except OSError as e:
                log.warning("could not save the suffix cache: %s", e)

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the longest cached prefix of ``tokens`` (at a clean cut) and drop the rest of the cache."""
        book = self.book
        n = 0
        limit = min(len(book.tokens), len(tokens) - 1)  # the last prompt token is always decoded for its logits
        while n < limit and book.tokens[n] == tokens[n]:
            n += 1
        n = book.safe_prefix(n)
        needed = len(tokens) - n + 1
        if needed > self.ctx.n_ctx - n:
            raise ContextOverflowError(
                f"the prompt has {len(tokens)} tokens but the context holds {self.ctx.n_ctx} "
                f"(one more is needed to answer); shorten it or raise n_ctx")
        book.rollback(n)
        return n

    # -- chat -----------------------------------------------------------------
    def session(self, system: str | None = None, history: Iterable[Mapping | Message] = ()) -> "ChatSession":
        return ChatSession(self, system, history)

    def check_cache(self) -> list[str]:
        """Differences between the engine's record of the KV cache and llama.cpp's (empty when clean)."""
        return self.book.problems()

    def close(self) -> None:
        self.ctx.close()
        self.model.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def score(self, prefix_tokens: Sequence[int], continuation_tokens: Sequence[int], *,
              keep_prefix: bool = True) -> list[float]:
        """Log-probability of each continuation token after the prefix (natural log). The continuation is
        not kept in the cache; the prefix is, unless ``keep_prefix=False``: then the cache goes back to the
        part of the prefix it already held, and scoring several texts after one prefix decodes that prefix
        the same way each time, so equal texts get equal scores (the numerics of quantized kernels depend
        on how many tokens a decode call holds)."""
        from .decoding.score import score_after

        prefix = list(prefix_tokens)
        if not prefix:
            raise ValueError("score needs a non-empty prefix")
        with self._lock:
            n = self._reuse_prefix(prefix)
            return score_after(self.ctx, self.book, self.aspd, prefix[n:], continuation_tokens,
                               keep_prefix=keep_prefix)


def _is_token_list(x) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(t, int) for t in x)


class ChatSession:
    """A multi-turn conversation. Each turn reuses the KV cache of the earlier turns: the prompt of
    turn n is the exact token stream of turns 1..n-1 plus the new message."""

    def __init__(self, engine: Engine, system: str | None = None, history: Iterable[Mapping | Message] = ()):
        self.engine = engine
        self.messages: list[Message] = []
        if system:
            self.messages.append(Message("system", system))
        self.messages.extend(Message.of(m) for m in history)
        self._tokens: list[int] = []

    def stream(self, text: str, **kw) -> Iterator[Event]:
        msgs = self.messages + [Message("user", text)]
        tokens = self.engine.chat_format.prompt_tokens(msgs)

        def commit(result: Result) -> None:
            self.messages = msgs + [Message("assistant", result.text, list(result.tokens))]
            self._tokens = tokens + list(result.tokens)

        e = self.engine
        return e._run(tokens, mode=kw.pop("mode", Mode.PARALLEL), max_tokens=kw.pop("max_tokens", 512),
                      sampling=kw.pop("sampling", None), caps=kw.pop("caps", None),
                      processors=kw.pop("processors", ()), record_margins=kw.pop("record_margins", False),
                      keep=True, speculate=kw.pop("speculate", None), sampling_kw=kw, on_commit=commit)

    def send(self, text: str, **kw) -> Result:
        result = None
        for ev in self.stream(text, **kw):
            if isinstance(ev, Done):
                result = ev.result
        return result

    def tokens(self) -> list[int]:
        """The conversation's token stream after the last completed turn (what the KV cache holds)."""
        return list(self._tokens)
