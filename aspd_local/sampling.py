"""Token sampling on numpy: greedy, temperature, top-k, top-p, min-p, repetition penalty, seed.

Every stream (the serial text, and each branch of each block) samples with its own state: its
own random generator, keyed by (seed, stream), and its own token history for the penalty. So the
tokens do not depend on the order in which the engine schedules the streams.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .aspd.grammar import Constraint


@dataclass
class SamplingParams:
    """``temperature=0`` is greedy decoding. ``top_k=0``, ``top_p=1``, ``min_p=0`` disable those filters."""

    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    seed: int | None = None

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if not 0 <= self.min_p < 1:
            raise ValueError("min_p must be in [0, 1)")
        if self.repeat_penalty <= 0:
            raise ValueError("repeat_penalty must be > 0")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class StreamInfo:
    """What a logits processor is told about the stream it acts on."""

    block: int | None  # None for serial text
    branch: int | None
    tokens: list[int] = field(default_factory=list)  # tokens this stream produced so far: serial text and
    # titles for the serial stream; for a branch, its content after the forced prefix


# A logits processor edits a writable copy of the logits in place.
LogitsProcessor = Callable[[StreamInfo, np.ndarray], None]


def _apply_penalty(x: np.ndarray, history: Sequence[int], penalty: float, last_n: int) -> None:
    if penalty == 1.0 or not history or last_n == 0:
        return
    ids = np.unique(np.asarray(history[-last_n:], dtype=np.int64))
    v = x[ids]
    x[ids] = np.where(v > 0, v / penalty, v * penalty)


def _mask(x: np.ndarray, c: Constraint) -> np.ndarray:
    if c.only:
        out = np.full_like(x, -np.inf)
        out[c.ids] = x[c.ids]
        return out
    x[c.ids] = -np.inf
    return x


def top2_margin(x: np.ndarray) -> float:
    """Difference between the two largest finite logits (inf when fewer than two)."""
    if x.shape[0] < 2:
        return float("inf")
    two = np.partition(x, -2)[-2:]
    if not np.isfinite(two[0]):
        return float("inf")
    return float(two[1] - two[0])


class StreamSampler:
    """Samples the tokens of one stream."""

    def __init__(self, params: SamplingParams, stream_key: tuple[int, ...], processors: Sequence[LogitsProcessor] = ()):
        self.params = params
        self.processors = list(processors)
        seed = params.seed if params.seed is not None else np.random.SeedSequence().entropy
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed) & (2**63 - 1), *stream_key])))
        self.last_margin: float | None = None

    def sample(self, logits: np.ndarray, c: Constraint, history: Sequence[int], info: StreamInfo | None = None,
               want_margin: bool = False) -> int:
        p = self.params
        fast = p.greedy and p.repeat_penalty == 1.0 and not self.processors and not want_margin and not c.only
        if fast:
            t = int(np.argmax(logits))
            if not c.banned_mask[t]:
                return t
        x = np.array(logits, dtype=np.float32, copy=True)
        for proc in self.processors:
            proc(info or StreamInfo(None, None), x)
        _apply_penalty(x, history, p.repeat_penalty, p.repeat_last_n)
        x = _mask(x, c)
        if want_margin:
            self.last_margin = top2_margin(x)
        if p.greedy:
            return int(np.argmax(x))
        return self._draw(x)

    def _draw(self, x: np.ndarray) -> int:
        p = self.params
        finite = np.flatnonzero(np.isfinite(x))
        if finite.size == 0:
            return int(np.argmax(x))
        if 0 < p.top_k < finite.size:
            idx = finite[np.argpartition(-x[finite], p.top_k - 1)[: p.top_k]]
        else:
            idx = finite
        vals = x[idx].astype(np.float64)
        order = np.argsort(-vals, kind="stable")
        idx, vals = idx[order], vals[order]
        probs = np.exp(vals - vals[0])
        probs /= probs.sum()
        keep = idx.size
        if p.top_p < 1.0:
            keep = min(keep, int(np.searchsorted(np.cumsum(probs), p.top_p) + 1))
        if p.min_p > 0:
            keep = min(keep, max(1, int(np.count_nonzero(probs >= p.min_p * probs[0]))))
        idx, vals = idx[:keep], vals[:keep]
        w = np.exp((vals - vals[0]) / p.temperature)
        w /= w.sum()
        return int(idx[self.rng.choice(idx.size, p=w)])
