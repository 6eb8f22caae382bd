"""Typed events streamed by the engine, in order: queued (only while the request waits for a slot),
serial deltas, block start, branch deltas, branch end, block end, done (docs/format.md section 6.12)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Stats:
    """Statistics of one generation."""

    prompt_tokens: int = 0
    reused_prompt_tokens: int = 0  # prompt tokens found in the KV cache already
    tokens: int = 0  # answer tokens in the stream (control and forced tokens included)
    sampled_tokens: int = 0  # tokens the model chose (forced prefixes and closes excluded)
    decode_calls: int = 0  # llama_decode calls after the prompt
    prompt_decode_calls: int = 0
    blocks: int = 0
    branches: int = 0
    repeated_titles: int = 0  # titles taken back because they repeated an earlier one of their block
    wall_s: float = 0.0
    prompt_s: float = 0.0
    serial_s: float = 0.0
    parallel_s: float = 0.0
    decode_s: float = 0.0  # time inside llama_decode after the prompt
    batch_sizes: dict[int, int] = field(default_factory=dict)  # tokens per call -> calls (after the prompt)
    draft_tokens: int = 0  # speculated tokens verified
    accepted_draft_tokens: int = 0  # of those, accepted
    draft_trees: int = 0  # draft trees verified (one per stream per decode call that carried one)
    speculate_s: float = 0.0  # speculation's own time: proposing, sizing, draft KV bookkeeping, index updates

    @property
    def acceptance_rate(self) -> float:
        return self.accepted_draft_tokens / self.draft_tokens if self.draft_tokens else 0.0

    @property
    def tokens_per_call(self) -> float:
        return self.tokens / self.decode_calls if self.decode_calls else 0.0

    @property
    def tokens_per_s(self) -> float:
        gen = self.wall_s - self.prompt_s
        return self.tokens / gen if gen > 0 else 0.0

    @property
    def speculate_ms_per_step(self) -> float:
        """Speculation's own time per decode call, in ms (part of the overhead below)."""
        return 1000 * self.speculate_s / self.decode_calls if self.decode_calls else 0.0

    @property
    def overhead_ms_per_step(self) -> float:
        """The engine's own time (Python: sampling, bookkeeping, events) per decode call, in ms."""
        gen = self.wall_s - self.prompt_s
        return 1000 * (gen - self.decode_s) / self.decode_calls if self.decode_calls else 0.0

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["batch_sizes"] = {str(k): v for k, v in sorted(self.batch_sizes.items())}
        d["tokens_per_call"] = round(self.tokens_per_call, 4)
        d["tokens_per_s"] = round(self.tokens_per_s, 3)
        d["overhead_ms_per_step"] = round(self.overhead_ms_per_step, 4)
        d["acceptance_rate"] = round(self.acceptance_rate, 4)
        d["speculate_ms_per_step"] = round(self.speculate_ms_per_step, 4)
        for k in ("wall_s", "prompt_s", "serial_s", "parallel_s", "decode_s", "speculate_s"):
            d[k] = round(d[k], 5)
        return d


@dataclass
class SerialDelta:
    text: str


@dataclass
class BlockStart:
    block: int
    titles: list[str]


@dataclass
class BranchDelta:
    block: int
    branch: int
    text: str


@dataclass
class BranchEnd:
    block: int
    branch: int
    text: str  # the branch's whole content
    reason: str  # "closed", "eos", "cap" (token cap), "context", "stop" (a stop string)


@dataclass
class BlockEnd:
    block: int
    texts: list[str]


@dataclass
class BlockInfo:
    titles: list[str]
    texts: list[str]
    token_counts: list[int]  # tokens per branch, <|branch|> and <|/branch|> included


@dataclass
class Result:
    """A finished generation: the rendered text, the raw token stream and statistics."""

    text: str
    tokens: list[int]  # the answer's token stream, control tokens included (what the KV cache holds)
    finish_reason: str  # "stop" (end of answer or a stop string), "length", "context", "cancelled"
    mode: str
    blocks: list[BlockInfo]
    stats: Stats
    margins: list[float | None] | None = None  # top-2 logit margin per answer token, when recorded


@dataclass
class Done:
    result: Result


@dataclass
class Queued:
    """The request waits for a free slot; ``position`` requests are ahead of it (0: it is next)."""

    position: int


Event = Queued | SerialDelta | BlockStart | BranchDelta | BranchEnd | BlockEnd | Done
