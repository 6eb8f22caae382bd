"""What a request asks for: one dataclass for mode, token budget, sampling, caps, stop strings and
speculation. The CLI, the server and the chat page fill it and take their defaults from it; it takes the
sampling defaults from SamplingParams, the type the sampler reads them as, and defines the decoding
``Mode`` and the ``Caps`` the decoder reads."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

from .sampling import LogitsProcessor, SamplingParams


class Mode(str, enum.Enum):
    AR = "ar"
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


@dataclass
class Caps:
    """Limits that end things cleanly instead of failing."""

    max_tokens: int = 512  # answer tokens in all, control tokens included: a hard cap in every mode
    max_titles: int = 8  # titles (branches) per block; capped by the request's sequence ids
    max_title_tokens: int = 16
    max_branch_tokens: int = 256


SPECULATE = ("suffix", "none")
_SAMPLING, _CAPS = SamplingParams(), Caps()


@dataclass(frozen=True)
class GenerationParams:
    """``temperature=0`` is greedy decoding; ``speculate=None`` takes the engine's default."""

    mode: str = Mode.PARALLEL.value  # "ar", "sequential" or "parallel"
    max_tokens: int = _CAPS.max_tokens
    temperature: float = _SAMPLING.temperature
    top_k: int = _SAMPLING.top_k
    top_p: float = _SAMPLING.top_p
    min_p: float = _SAMPLING.min_p
    repeat_penalty: float = _SAMPLING.repeat_penalty
    repeat_last_n: int = _SAMPLING.repeat_last_n
    seed: int | None = _SAMPLING.seed
    stop: tuple[str, ...] = ()
    speculate: str | None = None  # "suffix" or "none"
    max_titles: int = _CAPS.max_titles
    max_title_tokens: int = _CAPS.max_title_tokens
    max_branch_tokens: int = _CAPS.max_branch_tokens
    keep: bool = True  # keep the answer cached after the prompt (False: only the prompt stays cached)
    record_margins: bool = False
    processors: tuple[LogitsProcessor, ...] = field(default=(), compare=False)

    def __post_init__(self):
        try:
            object.__setattr__(self, "mode", Mode(self.mode).value)
        except ValueError:
            raise ValueError(f"mode must be one of {', '.join(m.value for m in Mode)}, got {self.mode!r}") from None
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "processors", tuple(self.processors))
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if self.speculate is not None and self.speculate not in SPECULATE:
            raise ValueError(f"speculate must be 'suffix' or 'none', got {self.speculate!r}")
        for name in ("max_titles", "max_title_tokens", "max_branch_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        self.sampling()  # checks the sampling fields

    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_k, self.top_p, self.min_p, self.repeat_penalty,
                              self.repeat_last_n, self.seed)

    def caps(self) -> Caps:
        return Caps(self.max_tokens, self.max_titles, self.max_title_tokens, self.max_branch_tokens)

    def replace(self, **changes) -> "GenerationParams":
        return replace(self, **changes)

    @classmethod
    def of(cls, params: "GenerationParams | None" = None, *, sampling: SamplingParams | None = None,
           caps: Caps | None = None, processors: Sequence[LogitsProcessor] = (), **kw) -> "GenerationParams":
        """``params`` with keyword changes; also takes a SamplingParams and Caps (the older keywords)."""
        changes = dict(kw)
        if sampling is not None:
            changes.update({f.name: getattr(sampling, f.name) for f in fields(SamplingParams)})
        if caps is not None:
            changes.update({f.name: getattr(caps, f.name) for f in fields(Caps)})
        if processors:
            changes["processors"] = tuple(processors)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"unknown generation option(s): {', '.join(unknown)}")
        base = params or cls()
        return base.replace(**changes) if changes else base


__all__ = ["Caps", "GenerationParams", "Mode", "SPECULATE"]
