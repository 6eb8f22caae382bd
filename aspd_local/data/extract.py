"""Finding the parallel structure already present in an answer.

Recognised, in this order of preference:
- markdown sections: two or more headers of the answer's top header level; a section runs to the
  next header of that level (subsections and lists stay inside it);
- lists: runs of numbered items, bulleted items, or lines that open with a bold lead (``**X**``),
  at one indentation; nested (more indented) lines belong to the item above them;
- parallel paragraphs: when the answer has neither, its paragraphs after an introduction that
  ends with a colon, or paragraphs that each open with a label (``Cost: ...``).

Every item's content is the exact substring of the answer, its trailing newline included, so that
``render(extract(answer)) == answer``. Blank lines between the items of a loose list belong to the
item before them (the last item of a loose list keeps its trailing blank lines when text follows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .segments import Block, Branch, Segment, Serial, normalized
from .titles import numbered, unique_titles

_HEADER = re.compile(r"^(#{1,6})\s+\S")
_NUMBERED = re.compile(r"^([ \t]*)\d+[.)][ \t]+\S")
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+\S")
_BOLD = re.compile(r"^()\*\*[^*\n]+\*\*")
_LABEL = re.compile(r"^[A-Z][\w' -]{0,30}:\s+\S")


def _lines(text: str) -> list[str]:
    """Lines with their ``\\n`` (only ``\\n`` splits; the last line may lack it)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _blank(line: str) -> bool:
    return not line.strip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _item_kind(line: str) -> tuple[str, int] | None:
    for kind, rx in (("numbered", _NUMBERED), ("bulleted", _BULLET), ("bold", _BOLD)):
        m = rx.match(line)
        if m:
            return kind, len(m.group(1))
    return None


@dataclass
class _Span:
    """A block found in the lines: items as [start, end) line ranges, and how it was found."""

    kind: str
    items: list[tuple[int, int]]


def _sections(lines: list[str]) -> list[_Span]:
    heads = [(i, len(m.group(1))) for i, ln in enumerate(lines) if (m := _HEADER.match(ln))]
    if not heads:
        return []
    top = min(level for _, level in heads)
    starts = [i for i, level in heads if level == top]
    if len(starts) < 2:
        return []
    items = [(a, b) for a, b in zip(starts, starts[1:] + [len(lines)])]
    return [_Span("sections", items)]


def _lists(lines: list[str]) -> list[_Span]:
    spans = []
    i, n = 0, len(lines)
    while i < n:
        k = _item_kind(lines[i])
        if k is None or k[1] > 3:
            i += 1
            continue
        kind, ind = k
        starts = [i]
        j = i + 1
        last_nonblank = i
        loose = False
        while j < n:
            ln = lines[j]
            if _blank(ln):
                m = j
                while m < n and _blank(lines[m]):
                    m += 1
                if m < n and (_item_kind(lines[m]) == (kind, ind) or _indent(lines[m]) > ind):
                    loose = loose or _item_kind(lines[m]) == (kind, ind)
                    j = m
                    continue
                break
            if _item_kind(ln) == (kind, ind):
                starts.append(j)
            elif _indent(ln) > ind:
                pass  # nested content of the item above
            elif kind == "bold" and not _blank(lines[j - 1]) and _item_kind(ln) is None and not _HEADER.match(ln):
                pass  # a bold-lead paragraph goes on over its following lines
            else:
                break
            last_nonblank = j
            j += 1
        end = last_nonblank + 1
        if loose:  # the last item takes its trailing blank lines, like the others, when text follows
            m = end
            while m < n and _blank(lines[m]):
                m += 1
            if m < n:
                end = m
        if len(starts) >= 2:
            spans.append(_Span(kind, list(zip(starts, starts[1:] + [end]))))
        i = max(end, i + 1)
    return spans


def _paragraphs(lines: list[str]) -> list[_Span]:
    paras = []  # (first line, end incl. trailing blank lines)
    i, n = 0, len(lines)
    while i < n:
        if _blank(lines[i]):
            i += 1
            continue
        a = i
        while i < n and not _blank(lines[i]):
            i += 1
        while i < n and _blank(lines[i]):
            i += 1
        paras.append((a, i))
    intro = bool(paras) and "".join(lines[paras[0][0]:paras[0][1]]).rstrip().endswith(":")
    if intro:
        paras = paras[1:]
    if len(paras) < 2:
        return []
    # without an introduction announcing them, paragraphs count as parallel only when each opens with
    # a label ("Cost: ..."): plain prose paragraphs usually go on from one another
    if not intro and not all(_LABEL.match(lines[a]) for a, _ in paras):
        return []
    return [_Span("paragraphs", paras)]


def find_spans(text: str) -> list[_Span]:
    lines = _lines(text)
    return _sections(lines) or _lists(lines) or _paragraphs(lines)


def extract(answer: str) -> list[Segment]:
    """The answer as serial text and blocks (a block per list, section run or paragraph run)."""
    lines = _lines(answer)
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln))
    segments: list[Segment] = []
    pos = 0
    for span in find_spans(answer):
        a, b = offsets[span.items[0][0]], offsets[span.items[-1][1]]
        segments.append(Serial(answer[pos:a]))
        contents = [answer[offsets[s]:offsets[e]] for s, e in span.items]
        titles = unique_titles(contents)
        if span.kind == "numbered":
            titles = numbered(contents, titles)
        segments.append(Block([Branch(t, c) for t, c in zip(titles, contents)], kind=span.kind))
        pos = b
    segments.append(Serial(answer[pos:]))
    return normalized(segments)
