"""The state of one answer on the page, driven by the engine's events: serial text, the open block's
branch panels (one per title, filling in live) and, once the block joins, the branches folded into the
answer in order. Pure: no Gradio, no engine; the page renders it (see ``panels``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..events import BlockEnd, BlockStart, BranchDelta, BranchEnd, Done, Event, Result, SerialDelta


@dataclass
class Branch:
    title: str
    text: str = ""
    done: bool = False  # its end marker (or a cap) came
    reason: str | None = None  # "closed", "eos", "cap", "context"


@dataclass
class AnswerView:
    """What the page shows of one answer while it streams, and after."""

    text: str = ""  # the answer so far as the chat shows it: serial text and joined blocks, in order
    branches: list[Branch] = field(default_factory=list)  # the open block's branches (empty between blocks)
    block: int | None = None  # index of the open block
    blocks_joined: int = 0
    result: Result | None = None  # set by Done

    @property
    def in_flight(self) -> int:
        """Branches of the open block still being decoded."""
        return sum(not b.done for b in self.branches)

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def stopped(self) -> bool:
        return self.result is not None and self.result.finish_reason == "cancelled"

    def apply(self, ev: Event) -> None:
        if isinstance(ev, SerialDelta):
            self.text += ev.text
        elif isinstance(ev, BlockStart):
            self.block = ev.block
            self.branches = [Branch(t) for t in ev.titles]
        elif isinstance(ev, BranchDelta):
            self.branches[ev.branch].text += ev.text
        elif isinstance(ev, BranchEnd):
            b = self.branches[ev.branch]
            b.text, b.done, b.reason = ev.text, True, ev.reason  # the branch's whole content is authoritative
        elif isinstance(ev, BlockEnd):
            self.text += "".join(ev.texts)  # fold: the branches join the answer in order
            self.branches, self.block = [], None
            self.blocks_joined += 1
        elif isinstance(ev, Done):
            self.result = ev.result
            if ev.result.finish_reason == "cancelled":
                # stopped: keep what was shown, a block cut short folded as far as its branches got
                self.text += "".join(b.text for b in self.branches)
            else:
                self.text = ev.result.text  # the engine's rendering is authoritative
            self.branches, self.block = [], None

    def chat_text(self) -> str:
        """The assistant message as the chat shows it."""
        if self.stopped:
            return (self.text + "\n\n" if self.text else "") + "*[stopped]*"
        return self.text
