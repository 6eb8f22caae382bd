"""Short lists finished item by item.

Asked for five to seven items, Gemma 3 270M often announces the number and stops early ("Here are seven
tips:" and four of them). Of the training prompts asking for 5 to 7 items, 117 usable answers held one
list with fewer items than asked, and the count filter dropped them all; the rows that survived taught the
model that "seven" means about four (docs/aspd-pipeline.md section 2). So the pipeline gives the base model
its own answer as far as the last item, plus the next item's marker (``5. **`` or ``- **``), and lets it
write that one item, line by line, until the list has as many items as the prompt asks. The text after the
list (the closing sentence) stays. Every item is the base model's own words; the pipeline writes only the
markers, as part-by-part answers get only their titles from it.

An item that is not one finished line with a bold lead ("- **Lead**: text.") drops the answer, as does a
loop in the finished answer; everything else (count, duplicate items, near-duplicate titles, independence)
is checked by ``data build`` like any other answer.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from ..engine import Engine
from .answers import AnswerSettings, Stopped
from .extract import extract
from .fewshot import messages_for, shots_named
from .filters import answer_filter_problems, count_problems
from .quality import answer_problems
from .segments import Block, render

ITEM_TOKENS = 60  # one item line: the longest training branch has 67 tokens with its marker and lead

_NUMBERED = re.compile(r"^(\d{1,2})([.)]) \*\*[^*\n]+\*\*")
_BULLETED = re.compile(r"^([-*+]) \*\*[^*\n]+\*\*")
_ITEM = re.compile(r"^\*\*[^*\n]{1,80}\*\*:? ?\S.*[.!?]$")  # what follows the marker


@dataclass
class ShortList:
    """An answer whose one list is shorter than asked: the text up to the end of the list's last item, the
    text after the list, how many items it has, and how the next one starts (``marker(k)`` for item k)."""

    head: str
    tail: str
    items: int
    numbered: str | None  # "." or ")" for a numbered list, None for a bulleted one
    bullet: str

    def marker(self, k: int) -> str:
        return f"{k}{self.numbered} **" if self.numbered else f"{self.bullet} **"


def short_list(answer: str, count: int | None) -> ShortList | None:
    """The answer's list, if it has exactly one block, of numbered or bulleted items with a bold lead each,
    2 or more items but fewer than ``count``, the last one ending its line; else None."""
    if not count:
        return None
    segments = extract(answer)
    blocks = [i for i, s in enumerate(segments) if isinstance(s, Block)]
    if len(blocks) != 1:
        return None
    i = blocks[0]
    block = segments[i]
    n = len(block.branches)
    if not 2 <= n < count or not block.branches[-1].content.endswith("\n"):
        return None
    firsts = [b.content.split("\n", 1)[0] for b in block.branches]
    if all(_NUMBERED.match(f) for f in firsts):
        nums = [_NUMBERED.match(f) for f in firsts]
        if [int(m.group(1)) for m in nums] != list(range(1, n + 1)) or len({m.group(2) for m in nums}) != 1:
            return None
        numbered, bullet = nums[0].group(2), ""
    elif all(_BULLETED.match(f) for f in firsts) and len({f[0] for f in firsts}) == 1:
        numbered, bullet = None, firsts[0][0]
    else:
        return None
    if any(b.content.count("\n") != 1 for b in block.branches):  # one line per item, as the new ones will be
        return None
    return ShortList(render(segments[:i + 1]), render(segments[i + 1:]), n, numbered, bullet)


def item_problem(line: str, marker: str) -> str | None:
    """Why a written item cannot stand in the list (None: it can)."""
    body = line[len(marker) - 2:]  # from the bold lead's "**"
    if not body[2:].strip():
        return "item_empty"
    if not _ITEM.match(body):
        return "item_unfinished" if not body.rstrip().endswith((".", "!", "?")) else "item_without_lead"
    return None


def _answer_problem(prompt: str, answer: str, examples: tuple[str, ...]) -> str | None:
    """The first reason (a loop, a repeated item or title) the answer as it stands cannot be kept."""
    problems = answer_problems(prompt, answer, examples) or answer_filter_problems(answer, extract(answer), None)
    return problems[0] if problems else None


def finish_list(engine: Engine, row: dict, settings: AnswerSettings) -> dict:
    """The answer row ``row`` with its short list finished item by item (``rejected`` says why not, when
    an item or the finished answer is unusable). Each item is tried with ``settings.repeat_penalties`` in turn."""
    t0 = time.perf_counter()
    count = row.get("count")
    found = short_list(row["answer"], count)
    out = {k: row[k] for k in ("id", "category", "prompt", "count")}
    out.update(original_answer=row["answer"], ended="turn", tries=[], repeat_penalty=row.get("repeat_penalty", 1.0),
               max_tokens=ITEM_TOKENS, fewshot=row.get("fewshot"))  # the penalty the list was written with
    if found is None:
        out.update(answer="", tokens=0, rejected="items: no short list", items_added=0,
                   seconds=round(time.perf_counter() - t0, 2))
        return out
    shots = shots_named(row.get("fewshot"))
    base = engine.prompt_tokens(messages_for(row["prompt"], shots))
    examples = tuple(a for _, a in shots)
    text, tokens, used = found.head, 0, out["repeat_penalty"]
    why = _answer_problem(row["prompt"], row["answer"], examples)  # a list already repeating an item stays short
    for k in range(found.items + 1, count + 1):
        marker = found.marker(k)
        for rp in settings.repeat_penalties:  # as for whole answers: greedy first, a repetition penalty if it loops
            res = engine.generate(base + engine.tokenize(text + marker), mode="ar", max_tokens=ITEM_TOKENS,
                                  repeat_penalty=rp, speculate="none", keep=False, stop=("\n",))
            tokens += len(res.tokens)
            if res.finish_reason == "cancelled":
                raise Stopped(row["prompt"])
            line = marker + res.text.rstrip()
            why = item_problem(line, marker) or ("item_unfinished" if res.finish_reason == "length" else None)
            if why is None:
                why = _answer_problem(row["prompt"], text + line + "\n" + found.tail, examples)
            if why is None:
                used = max(used, rp)
                break
        if why:
            break
        text += line + "\n"
    answer = text + found.tail if why is None else ""
    out.update(answer=answer, tokens=tokens, repeat_penalty=used, items_added=count - found.items,
               rejected=f"items: {why}" if why else None, seconds=round(time.perf_counter() - t0, 2))
    if why is None:
        out["count_ok"] = not count_problems(answer, extract(answer), count)
    return out


def finishable(rows: list[dict]) -> list[dict]:
    """The answer rows a list can be finished for: usable, asked for a count they miss, with a short list."""
    return [r for r in rows if r.get("rejected") is None and r.get("count") and r.get("count_ok") is False
            and short_list(r["answer"], r["count"]) is not None]
