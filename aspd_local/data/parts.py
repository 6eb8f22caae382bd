"""Multi-part prompts answered part by part.

A ``multi_part`` prompt names its parts ("Tell me about salt: what it is, where it comes from, and what
it is used for"). Asked whole, the base model answers in a sentence or two of prose: of the 226 such
training prompts, 210 answers had no list item at all and 8 made training rows (docs/aspd-pipeline.md
section 2). But each part is a question it answers well alone, and parts answered alone are independent
by construction, which is what a parallel branch is. So the pipeline asks the base model each part's own
question ("Where does salt come from?") and writes the answer as the parts under their titles, in the
layout of the example turns (``**What it is**: ...``), one paragraph each. The text is still the base
model's own; only the layout is the pipeline's.

The parts are read from the prompt: the fixed ``multi_part`` templates of ``aspd_local.data.prompts`` (a
test checks that every one has its parts here), and the prompts :func:`composed_prompts` makes of a frame
and generic parts (``data prompts --parts N``); any other prompt has none.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from functools import lru_cache

from .prompts import PLURAL_MULTI_PART


@dataclass(frozen=True)
class Part:
    title: str  # as the answer heads it: "Where it comes from"
    question: str  # what the base model is asked: "Where does salt come from?"


# a part as the templates name it -> (title, question for a singular topic, for a plural one)
PARTS: dict[str, tuple[str, str, str]] = {
    "what it is": ("What it is", "What is {t}?", "What are {t}?"),
    "why it matters": ("Why it matters", "Why does {t} matter?", "Why do {t} matter?"),
    "how people use it": ("How people use it", "How do people use {t}?", "How do people use {t}?"),
    "how people use it today": ("How people use it today", "How do people use {t} today?",
                                "How do people use {t} today?"),
    "where it comes from": ("Where it comes from", "Where does {t} come from?", "Where do {t} come from?"),
    "where it came from": ("Where it came from", "Where did {t} come from?", "Where did {t} come from?"),
    "what it is used for": ("What it is used for", "What is {t} used for?", "What are {t} used for?"),
    "what it is like": ("What it is like", "What is {t} like?", "What are {t} like?"),
    "where it is used": ("Where it is used", "Where is {t} used?", "Where are {t} used?"),
    "how it works": ("How it works", "How does {t} work?", "How do {t} work?"),
    "its history": ("Its history", "What is the history of {t}?", "What is the history of {t}?"),
    "its main uses": ("Its main uses", "What are the main uses of {t}?", "What are the main uses of {t}?"),
    "its risks": ("Its risks", "What are the risks of {t}?", "What are the risks of {t}?"),
    "one interesting fact": ("One interesting fact", "Tell me one interesting fact about {t}.",
                             "Tell me one interesting fact about {t}."),
}

# every multi_part template of aspd_local.data.prompts -> the parts it names, in order
TEMPLATE_PARTS: dict[str, tuple[str, ...]] = {
    "Tell me about {t}: what it is, why it matters, and how people use it.":
        ("what it is", "why it matters", "how people use it"),
    "Tell me about {t}: what it is, where it comes from, and what it is used for.":
        ("what it is", "where it comes from", "what it is used for"),
    "Explain {t}: its history, how it works, and its main uses.": ("its history", "how it works", "its main uses"),
    "What is {t}, and why does it matter?": ("what it is", "why it matters"),
    "Tell me what {t} is and how it works.": ("what it is", "how it works"),
    "Explain {t}: what it is, how it works, why it matters, and where it is used.":
        ("what it is", "how it works", "why it matters", "where it is used"),
    "Could you tell me what {t} is, where it came from, and how people use it today?":
        ("what it is", "where it came from", "how people use it today"),
    "I'm curious about {t}. What is it, and what is it used for?": ("what it is", "what it is used for"),
    "Describe {t}: where it comes from, what it is like, and how people use it.":
        ("where it comes from", "what it is like", "how people use it"),
    "Give me a short explanation of {t}: what it is, its history, and one interesting fact.":
        ("what it is", "its history", "one interesting fact"),
    "What is {t}, how does it work, and what are its risks?": ("what it is", "how it works", "its risks"),
}


# Composed prompts (:func:`composed_prompts`): a frame around a topic and 2 to 4 parts of GENERIC_PARTS,
# so that the model meets many combinations and orders of parts, each part one branch under its own title
FRAMES: tuple[str, ...] = (
    "Tell me about {t}: {parts}.",
    "Explain {t}: {parts}.",
    "I'd like to know about {t}: {parts}.",
    "For a school project on {t}, tell me {parts}.",
    "Give me a short overview of {t}: {parts}.",
    "Help me understand {t}: {parts}.",
    "Could you explain {t} to me - {parts}?",
    "{T}: {parts}?",
)
# parts that fit any topic of the multi-part pool (things, materials, practices: "the telephone", "salt",
# "yoga"); "how it works" or "how it is made" fit only some, so they stay in the fixed templates
GENERIC_PARTS: tuple[str, ...] = (
    "what it is", "where it comes from", "what it is used for", "why it matters", "its history",
    "what it is like", "how people use it", "one interesting fact",
)
_SPLIT = re.compile(r",\s*and\s+|,\s*|\s+and\s+")


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[re.Pattern, tuple[str, ...] | None]]:
    """(pattern, parts) of every fixed template, then (pattern, None) of every frame (its parts are read
    from the prompt)."""
    out: list[tuple[re.Pattern, tuple[str, ...] | None]] = []
    for template, parts in TEMPLATE_PARTS.items():
        head, _, tail = template.partition("{t}")
        out.append((re.compile(re.escape(head) + r"(?P<t>.+?)" + re.escape(tail) + r"\Z"), parts))
    for frame in FRAMES:
        body = re.escape(frame).replace(r"\{t\}", r"(?P<t>.+?)").replace(r"\{T\}", r"(?P<T>.+?)")
        out.append((re.compile(body.replace(r"\{parts\}", r"(?P<parts>.+)") + r"\Z"), None))
    return out


def _uncap(topic: str) -> str:
    """The topic as it stands mid-sentence ("The telephone" -> "the telephone"; "DNA", "GPS" stay)."""
    return topic[0].lower() + topic[1:] if topic[:1].isupper() and not topic[1:2].isupper() else topic


def parts_of(prompt: str) -> list[Part] | None:
    """The parts ``prompt`` names, each with its own question; None for a prompt from no known template
    or frame, or naming a part that is not in PARTS."""
    prompt = prompt.strip()
    for pattern, names in _patterns():
        m = pattern.match(prompt)
        if not m:
            continue
        topic = m.group("t") if "t" in m.groupdict() else _uncap(m.group("T"))
        if names is None:
            names = tuple(_SPLIT.split(m.group("parts")))
            if len(names) < 2 or any(n not in PARTS for n in names) or len(set(names)) < len(names):
                continue
        plural = topic in PLURAL_MULTI_PART
        return [Part(PARTS[n][0], PARTS[n][2 if plural else 1].format(t=topic)) for n in names]
    return None


def _join(phrases: list[str], oxford: bool) -> str:
    if len(phrases) == 2:
        return f"{phrases[0]} and {phrases[1]}"
    return ", ".join(phrases[:-1]) + ("," if oxford else "") + f" and {phrases[-1]}"


def composed_prompts(topics: list[str], n: int, seed: int = 0, existing=()) -> list[dict]:
    """``n`` multi-part training prompts (ids ``q`` + 8 hex digits of the text's hash): a frame, a topic
    (cycled through ``topics`` in a seeded order) and 2 to 4 distinct parts of GENERIC_PARTS ("what it
    is" first when drawn); ``count`` is the number of parts. None has a text of ``existing``."""
    rng = random.Random(f"{seed}-parts")
    have = set(existing)
    order = list(topics)
    rng.shuffle(order)
    rows: list[dict] = []
    i = 0
    while len(rows) < n and i < 50 * max(n, 1):
        topic = order[i % len(order)]
        i += 1
        k = rng.choices((2, 3, 4), weights=(3, 4, 3))[0]
        names = rng.sample(GENERIC_PARTS, k)
        if "what it is" in names:
            names.remove("what it is")
            names.insert(0, "what it is")
        frame = rng.choice(FRAMES)
        text = frame.format(t=topic, T=topic[:1].upper() + topic[1:], parts=_join(names, rng.random() < 0.5))
        if text in have:
            continue
        have.add(text)
        rows.append({"id": "q" + hashlib.sha1(text.encode()).hexdigest()[:8], "prompt": text,
                     "category": "multi_part", "count": k, "count_form": "enumerated"})
    return rows


def part_problem(answer: str) -> str | None:
    """Why a part's answer cannot stand as one item (None: it can). An item is one paragraph that ends a
    sentence: a part answered with a list or several paragraphs would nest items in an item."""
    text = answer.strip()
    if not text:
        return "part_empty"
    if "\n" in text:
        return "part_not_one_paragraph"
    if text[-1] not in ".!?":
        return "part_unfinished"
    return None


def compose(parts: list[Part], answers: list[str]) -> str:
    """The answer to the whole prompt: each part under its title, one paragraph each."""
    return "\n\n".join(f"**{p.title}**: {a.strip()}" for p, a in zip(parts, answers, strict=True))
