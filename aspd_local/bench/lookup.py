"""The prompt-lookup peer: llama-cpp-python's own model-free speculation (``LlamaPromptLookupDecoding``,
through its high-level ``Llama`` class), on the same GGUF file with the same threads, greedy.

It is measured the way the engine measures itself: generation time after the prompt, ``llama_decode``
calls (each ``Llama.eval`` of a step is one call here: a step never exceeds the batch size), draft
tokens proposed and accepted.
"""

from __future__ import annotations

import contextlib
import time

import llama_cpp
import numpy as np
import llama_cpp.llama as llama_high
from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

from ..llama.model import use_extra_buffer_types


@contextlib.contextmanager
def _model_params_like_ours():
    """Load with the same weight-layout choice as the engine (llama.cpp's AMX repacking crashes in this
    build), by adjusting the params the high-level class passes to its model loader."""
    original = llama_high.internals.LlamaModel
    extra = use_extra_buffer_types()

    def load(*args, **kw):
        params = kw.get("params")
        if params is not None and hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = extra
        return original(*args, **kw)

    llama_high.internals.LlamaModel = load
    try:
        yield
    finally:
        llama_high.internals.LlamaModel = original


class PromptLookupPeer:
    def __init__(self, model_path: str, *, n_ctx: int, n_threads: int, n_batch: int, n_gpu_layers: int,
                 eog_ids, banned_ids=(), num_pred_tokens: int = 10, max_ngram_size: int = 2):
        """``banned_ids``: tokens the peer may never sample -- the control tokens the engine masks in ``ar``
        mode (an ASPD model would otherwise open blocks the peer cannot serve), so both answer alike."""
        with _model_params_like_ours():
            self.llm = llama_cpp.Llama(model_path, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
                                       n_threads=n_threads, n_threads_batch=n_threads, n_gpu_layers=n_gpu_layers,
                                       draft_model=LlamaPromptLookupDecoding(max_ngram_size, num_pred_tokens),
                                       verbose=False)
        self.eog = set(int(t) for t in eog_ids)
        self.banned = np.array(sorted(set(int(t) for t in banned_ids) - self.eog), dtype=np.int64)
        self.settings = {"num_pred_tokens": num_pred_tokens, "max_ngram_size": max_ngram_size}
        self._calls: list[tuple[int, float]] = []
        original_eval = self.llm.eval

        def eval_counted(tokens):
            t0 = time.perf_counter()
            original_eval(tokens)
            self._calls.append((len(tokens), time.perf_counter() - t0))

        self.llm.eval = eval_counted

    def generate(self, prompt_tokens: list[int], max_tokens: int, repeat_penalty: float = 1.0) -> dict:
        """Greedy answer to ``prompt_tokens``: tokens, generation time and decode statistics."""
        self._calls.clear()
        out: list[int] = []
        t0 = time.perf_counter()
        banned = self.banned

        def mask(_ids, logits):
            logits[banned] = -np.inf
            return logits

        gen = self.llm.generate(prompt_tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=repeat_penalty,
                                logits_processor=llama_cpp.LogitsProcessorList([mask]) if len(banned) else None)
        t_first = None
        finish = "length"
        try:
            for tok in gen:
                if t_first is None:
                    t_first = time.perf_counter()
                if tok in self.eog:
                    finish = "stop"
                    break
                out.append(int(tok))
                if len(out) >= max_tokens:
                    break
        finally:
            gen.close()
        t_end = time.perf_counter()
        calls = self._calls[1:]  # the first eval is the prompt
        prompt_s = (t_first or t_end) - t0
        decoded = sum(n for n, _ in calls)
        sizes: dict[int, int] = {}
        for n, _ in calls:
            sizes[n] = sizes.get(n, 0) + 1
        # every step decodes the last token plus its draft; each accepted draft token saves a step
        draft_tokens = decoded - len(calls)
        accepted = max(0, len(out) - 1 - len(calls))
        return {"tokens": out, "wall_s": t_end - (t_first or t_end), "prompt_s": prompt_s,
                "decode_s": sum(dt for _, dt in calls), "decode_calls": len(calls), "batch_sizes": sizes,
                "draft_tokens": draft_tokens, "accepted_draft_tokens": accepted, "finish_reason": finish}

    def close(self) -> None:
        self.llm.close()
