"""An engine's speculation state: the machine's cost curve, the global suffix index over earlier answers
(with its background saver), the acceptance model, and what each speculative request gets from them (a
``Speculator``) and what the step plan gets (a ``DraftPolicy``).

The cost curve comes from a cache file keyed by model file, thread count, GPU layers and machine, or is
measured on the scheduler's thread between two steps (``costcurve.load_or_measure``): when the engine
loads if it speculates by default, else before the first speculative request is queued. Never inside a
step.
"""

from __future__ import annotations

import os

from .decoding.costcurve import cost_of, curve_cache_file, curve_cache_key, load_or_measure, measure_cost_curve
from .decoding.speculative import Speculator
from .kv import KvCache
from .llama.context import Context
from .planner import DraftPolicy
from .scheduler import Scheduler
from .store import cache_dir
from .suffix.acceptance import AcceptanceModel
from .suffix.cache import load_index
from .suffix.index import TokenIndex
from .suffix.proposer import SuffixProposer
from .suffix.saver import IndexSaver


class Speculation:
    def __init__(self, config, ctx: Context, cache: KvCache, scheduler: Scheduler):
        self.config, self.ctx, self.cache, self.scheduler = config, ctx, cache, scheduler
        self.model = ctx.model
        self.acceptance = AcceptanceModel()
        self.curve: dict[int, float] | None = None
        self.index: TokenIndex | None = None
        self.saver: IndexSaver | None = None  # writes the global index in the background

    def model_key(self) -> str:
        st = os.stat(self.model.path)
        return f"{os.path.basename(self.model.path)}-{st.st_size}-{int(st.st_mtime)}"

    # -- the cost curve -------------------------------------------------------
    def cost_curve(self) -> dict[int, float]:
        if self.curve is None:
            key = curve_cache_key(self.model.path, self.ctx.n_threads, self.model.n_gpu_layers)
            path = curve_cache_file(os.path.join(cache_dir(), "costcurve"), key)
            self.curve = self.scheduler.call(lambda: load_or_measure(self.ctx, self.cache, path, key))
        return self.curve

    def measure(self, sizes) -> dict[int, float]:
        return self.scheduler.call(lambda: measure_cost_curve(self.ctx, self.cache, sizes))

    def draft_policy(self) -> DraftPolicy:
        """How the step plan grants draft nodes: by this machine's cost curve, or every node ("all")."""
        cfg = self.config
        if cfg.suffix_budget == "all":
            return DraftPolicy(None, cfg.suffix_min_gain)
        if cfg.suffix_budget != "cost":
            raise ValueError(f"suffix_budget must be 'cost' or 'all', got {cfg.suffix_budget!r}")
        curve = self.cost_curve()
        return DraftPolicy(lambda n: cost_of(curve, n), cfg.suffix_min_gain, max(curve))

    # -- the global index -----------------------------------------------------
    def index_path(self) -> str:
        return os.path.join(cache_dir(), "suffix", f"{self.model_key()}.npz")

    def global_index(self) -> TokenIndex:
        if self.index is None:
            cfg = self.config
            self.index = (load_index(self.index_path(), cfg.suffix_max_depth, model_key=self.model_key(),
                                     n_vocab=self.model.n_vocab, max_tokens=cfg.suffix_cache_tokens)
                          if cfg.suffix_cache else TokenIndex(cfg.suffix_max_depth))
        return self.index

    def speculator(self, prompt: list[int]) -> Speculator:
        """A request's speculator: proposals from the global index, the prompt and its own answer."""
        cfg = self.config
        proposer = SuffixProposer(self.global_index(), cfg.suffix_alpha, cfg.suffix_min_token_prob,
                                  cfg.suffix_max_depth)
        spec = Speculator(proposer, self.acceptance, cfg.suffix_max_draft, cfg.suffix_budget)
        spec.begin(prompt)
        return spec

    def remember(self, answer: list[int]) -> None:
        """Add an answer to the global index, keep it bounded, and have it saved (runs on the scheduler's
        thread: the index is copied here, and written by the saver's thread)."""
        if not answer:
            return
        cfg = self.config
        index = self.global_index()
        index.add_sequence(answer)
        if index.n_tokens > cfg.suffix_cache_tokens:
            # evict down to 90% of the bound, so the rebuild happens once per many requests, not every one
            index.evict(max_tokens=int(cfg.suffix_cache_tokens * 0.9))
        if cfg.suffix_cache:
            path, key = self.index_path(), self.model_key()
            saver = self.saver
            if saver is None or (saver.path, saver.model_key) != (path, key):
                if saver is not None:
                    saver.close()  # (the cache folder or the model file changed: rare)
                saver = self.saver = IndexSaver(path, key)
            saver.request_save(index)

    def close(self) -> None:
        if self.saver is not None:  # the last answers reach the disk before the engine is gone
            self.saver.close()
