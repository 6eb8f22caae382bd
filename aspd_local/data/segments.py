"""An answer as segments: serial text and parallel blocks of titled branches (docs/format.md sections 2 and 4).

JSON form (the training-row format): ``{"type": "serial", "text": ...}`` and
``{"type": "block", "branches": [{"title": ..., "content": ...}, ...]}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Branch:
    title: str
    content: str


@dataclass
class Serial:
    text: str

    def as_json(self) -> dict:
        return {"type": "serial", "text": self.text}


@dataclass
class Block:
    branches: list[Branch] = field(default_factory=list)
    kind: str = ""  # how it was found: numbered, bulleted, sections, paragraphs (not part of the row format)

    @property
    def titles(self) -> list[str]:
        return [b.title for b in self.branches]

    def as_json(self) -> dict:
        return {"type": "block", "branches": [{"title": b.title, "content": b.content} for b in self.branches]}


Segment = Serial | Block


def has_block(row: dict) -> bool:
    """Whether a training row (JSON form) has a parallel block among its segments."""
    return any(seg.get("type") == "block" for seg in row.get("segments") or ())


def render(segments: list[Segment]) -> str:
    """The text a user sees: serial texts and branch contents in order (docs/format.md section 4)."""
    parts = []
    for s in segments:
        if isinstance(s, Serial):
            parts.append(s.text)
        else:
            parts.extend(b.content for b in s.branches)
    return "".join(parts)


def to_json(segments: list[Segment]) -> list[dict]:
    return [s.as_json() for s in segments]


def from_json(rows: list[dict]) -> list[Segment]:
    out: list[Segment] = []
    for r in rows:
        if r.get("type") == "serial":
            out.append(Serial(r["text"]))
        elif r.get("type") == "block":
            out.append(Block([Branch(b["title"], b["content"]) for b in r["branches"]]))
        else:
            raise ValueError(f"unknown segment {r!r}")
    return out


def normalized(segments: list[Segment]) -> list[Segment]:
    """Adjacent serial segments merged, empty ones dropped (a serial answer is one serial segment)."""
    out: list[Segment] = []
    for s in segments:
        if isinstance(s, Serial):
            if not s.text:
                continue
            if out and isinstance(out[-1], Serial):
                out[-1] = Serial(out[-1].text + s.text)
                continue
        out.append(s)
    return out


def serialized(block: Block) -> Serial:
    """A block turned back into serial text (render unchanged)."""
    return Serial("".join(b.content for b in block.branches))
