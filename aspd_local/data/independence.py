"""Are the branches of a block independent? Measured with the model itself.

For branch k, the mean log-likelihood per token of its content is measured twice under the base
model: given the prompt, the text before the block and its own title prefix (``title + ": "``), and
given the same plus the contents of the sibling branches before it. The gain (second minus first,
nats per token) is what the branch draws from its siblings. Decoded in parallel, a branch never
sees them; a branch that gains clearly from them depends on them.

Only the body of each item is scored: its lead (list marker, bold lead, header line) is part of the
prefix in both measurements. The lead is fixed by the title and the list's format (what the
trained model sees in every branch's forced prefix and title list); left in, the gain mostly
measures the model guessing "2." or "- **" after seeing item 1, not any dependence of content.

Pieces are tokenized one by one (as the engine forces them), so the shared prefixes of successive
calls line up and the engine's KV cache decodes them only once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..aspd.tokens import DEFAULT_SEPARATOR
from ..engine import Engine
from .segments import Block


@dataclass
class BranchScore:
    alone: float  # mean log-likelihood per token, without the siblings
    with_siblings: float  # mean log-likelihood per token, after the siblings before it
    tokens: int

    @property
    def gain(self) -> float:
        return self.with_siblings - self.alone


_LEAD = re.compile(r"^(?:#{1,6}[^\n]*\n+"  # a header line
                   r"|[ \t]*(?:[-*+]|\d+[.)])[ \t]+(?:\*\*[^*\n]+\*\*:?[ \t]*)?"  # a list marker, maybe a bold lead
                   r"|\*\*[^*\n]+\*\*:?[ \t]*)")  # a bold lead


def split_lead(content: str) -> tuple[str, str]:
    """(lead, body) of an item: ``"2. **Blue**: calm."`` -> ``("2. **Blue**: ", "calm.")``. No body, no lead."""
    m = _LEAD.match(content)
    if not m or not content[m.end():].strip():
        return "", content
    return content[:m.end()], content[m.end():]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def block_scores(engine: Engine, prompt_tokens: list[int], before: str, block: Block,
                 separator: str = DEFAULT_SEPARATOR) -> list[BranchScore]:
    """One score per branch after the first (the first has no sibling before it)."""
    tok = engine.tokenize
    base = list(prompt_tokens) + (tok(before) if before else [])
    contents = [tok(b.content) for b in block.branches]
    parts = [split_lead(b.content) for b in block.branches]
    heads = [tok(b.title + separator) + (tok(lead) if lead else []) for b, (lead, _) in zip(block.branches, parts)]
    bodies = [tok(body) for _, body in parts]
    out = []
    # with siblings first, in order: each call extends the previous call's prefix
    with_sib = []
    seen: list[int] = []
    for k in range(len(block.branches)):
        if k > 0:
            with_sib.append(_mean(engine.score(base + seen + heads[k], bodies[k])))
        seen = seen + contents[k]
    for k in range(1, len(block.branches)):
        alone = _mean(engine.score(base + heads[k], bodies[k]))
        out.append(BranchScore(alone, with_sib[k - 1], len(bodies[k])))
    return out
