"""The live statistics strip: tokens per second, tokens per decode call, branches in flight, and the
speedup over plain decoding estimated from this machine's cost curve.

While an answer streams the numbers are estimates (each text delta counts as one token; decode calls
are read from the engine's context); once it is done they are the engine's own statistics."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..decoding.costcurve import cost_of, predicted_ms
from ..events import BlockEnd, BlockStart, BranchDelta, BranchEnd, Done, Event, SerialDelta, Stats


def speedup_vs_ar(curve: dict[int, float] | None, tokens: int, batch_sizes: dict[int, int]) -> float | None:
    """How much faster than decoding the same tokens one per call the run's decode calls are, by the cost
    curve (ms per call by batch size). None without a curve or calls."""
    if not curve or not tokens or not batch_sizes:
        return None
    spent = predicted_ms(curve, batch_sizes)
    return tokens * cost_of(curve, 1) / spent if spent > 0 else None


@dataclass
class StatsSnapshot:
    tokens: int = 0
    tokens_per_s: float = 0.0
    tokens_per_call: float = 0.0
    in_flight: int = 0  # branches being decoded now
    speedup: float | None = None  # vs plain decoding, estimated from the cost curve
    final: bool = False  # the engine's statistics (else live estimates)
    finish_reason: str | None = None


class LiveStats:
    """Follows one answer's events and says where it stands."""

    def __init__(self, curve: dict[int, float] | None = None, decode_calls=None, clock=time.perf_counter):
        self.curve = curve
        self._calls = decode_calls  # () -> the engine's decode calls so far (None: unknown while live)
        self._clock = clock
        self._t0 = None
        self._calls0 = None
        self._batches: dict[int, int] = {}  # live: batch size per decode call, from deltas between reads
        self._last_calls = None
        self._pending = 0  # deltas since the last read of the call counter
        self.tokens = 0
        self.in_flight = 0
        self.stats: Stats | None = None
        self.finish_reason: str | None = None

    def apply(self, ev: Event) -> None:
        if self._t0 is None:  # the first event comes after the prompt is in: time the answer from here
            self._t0 = self._clock()
            self._calls0 = self._last_calls = self._calls() if self._calls else None
        if isinstance(ev, (SerialDelta, BranchDelta)):
            self._read_calls()  # the calls made since the last delta decoded the deltas before this one
            self.tokens += 1
            self._pending += 1
        elif isinstance(ev, BlockStart):
            self.in_flight = len(ev.titles)
        elif isinstance(ev, BranchEnd):
            self.in_flight = max(0, self.in_flight - 1)
        elif isinstance(ev, BlockEnd):
            self.in_flight = 0
        elif isinstance(ev, Done):
            self.stats, self.finish_reason, self.in_flight = ev.result.stats, ev.result.finish_reason, 0

    def _read_calls(self) -> None:
        if self._calls is None:
            return
        now = self._calls()
        n = now - self._last_calls
        if n > 0:  # the tokens seen since the last read came from these calls
            size = max(1, round(self._pending / n))
            self._batches[size] = self._batches.get(size, 0) + n
            self._last_calls, self._pending = now, 0

    def snapshot(self) -> StatsSnapshot:
        if self.stats is not None:
            s = self.stats
            return StatsSnapshot(s.tokens, s.tokens_per_s, s.tokens_per_call, 0,
                                 speedup_vs_ar(self.curve, s.tokens, s.batch_sizes), True, self.finish_reason)
        if self._t0 is None:
            return StatsSnapshot()
        dt = self._clock() - self._t0
        calls = sum(self._batches.values())
        counted = sum(b * n for b, n in self._batches.items())
        return StatsSnapshot(self.tokens, self.tokens / dt if dt > 0 else 0.0,
                             counted / calls if calls else 0.0, self.in_flight,
                             speedup_vs_ar(self.curve, counted, self._batches))
