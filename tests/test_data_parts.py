"""Multi-part prompts answered part by part (aspd_local.data.parts): every multi_part template of the
prompt generator has its parts, each part's own question is what the base model is asked, the answer is
those answers under their titles, and `data build` puts such rows in place of the whole answers."""

from __future__ import annotations

import json

import pytest
from conftest import make_engine

from aspd_local.bench.checks import check_answer
from aspd_local.data import prompts as P
from aspd_local.data.answers import AnswerSettings, answer_row
from aspd_local.data.build import build_dataset, merged_answers
from aspd_local.data.extract import extract
from aspd_local.data.fewshot import messages_for, shots_named
from aspd_local.data.parts import (FRAMES, GENERIC_PARTS, PARTS, TEMPLATE_PARTS, Part, compose, composed_prompts,
                                   part_problem, parts_of)


def _multi_part_templates() -> list[tuple[str, int | None]]:
    first = [(t, 3) for f in P.FAMILIES if f.category == "multi_part" for t in f.templates]
    more = [(t.text, t.count) for f in P._more_families(0) if f.category == "multi_part" for t in f.templates]
    return first + more


def test_every_multi_part_template_has_as_many_parts_as_it_asks_for():
    templates = _multi_part_templates()
    assert len(templates) == 11 and {t for t, _ in templates} == set(TEMPLATE_PARTS)
    for template, count in templates:
        parts = parts_of(template.format(t="salt"))
        assert parts is not None and len(parts) == count, template
        assert len({p.title for p in parts}) == count and all(p.question.endswith(("?", ".")) for p in parts)


def test_every_training_multi_part_prompt_is_split_and_nothing_else_is():
    rows = P.build_prompt_sets(0)[0] + P.more_prompts([], 400)
    multi = [r for r in rows if r["category"] == "multi_part"]
    assert multi and all(len(parts_of(r["prompt"])) == r["count"] for r in multi)
    assert all(parts_of(r["prompt"]) is None for r in rows if r["category"] != "multi_part")


def test_parts_of_a_prompt():
    assert parts_of("Tell me about salt: what it is, where it comes from, and what it is used for.") == [
        Part("What it is", "What is salt?"), Part("Where it comes from", "Where does salt come from?"),
        Part("What it is used for", "What is salt used for?")]
    # the first sets' plural topics are asked in the plural
    assert [p.question for p in parts_of("Explain vaccines: its history, how it works, and its main uses.")] == [
        "What is the history of vaccines?", "How do vaccines work?", "What are the main uses of vaccines?"]
    assert parts_of("What is inflation, what causes it, and how does it affect my savings?") is None


def test_a_composed_answer_is_one_block_with_a_branch_per_part_and_meets_its_count():
    parts = parts_of("Tell me what the compass is and how it works.")
    text = compose(parts, ["A compass is a tool that shows north.", "A magnetised needle turns to the north."])
    assert text == ("**What it is**: A compass is a tool that shows north.\n\n"
                    "**How it works**: A magnetised needle turns to the north.")
    [block] = extract(text)
    assert [b.title for b in block.branches] == ["What it is", "How it works"]
    assert check_answer({"prompt": "Tell me what the compass is and how it works.", "count": 2},
                        {"text": text, "tokens": 20, "finish_reason": "stop"})["count_ok"]
    with pytest.raises(ValueError):
        compose(parts, ["only one"])


def test_composed_prompts_name_their_parts_and_are_split_back():
    topics = ["salt", "the telephone", "DNA", "yoga"]
    rows = composed_prompts(topics, 60, seed=1, existing=["Tell me about salt: what it is and its history."])
    assert len(rows) == 60 and len({r["prompt"] for r in rows}) == 60 and len({r["id"] for r in rows}) == 60
    assert rows == composed_prompts(topics, 60, seed=1, existing=["Tell me about salt: what it is and its history."])
    assert all(r["prompt"] != "Tell me about salt: what it is and its history." for r in rows)
    assert {r["count"] for r in rows} == {2, 3, 4} and all(r["category"] == "multi_part" for r in rows)
    for r in rows:
        parts = parts_of(r["prompt"])
        assert parts is not None and len(parts) == r["count"], r["prompt"]
        assert {p.title for p in parts} <= {PARTS[n][0] for n in GENERIC_PARTS}
        assert all(any(t in p.question for t in topics) for p in parts), r["prompt"]
    # every frame is used, and a frame that starts with the topic gives it back as it stands mid-sentence
    assert {next(f for f in FRAMES if _frame_of(f, r["prompt"])) for r in rows} == set(FRAMES)
    assert [p.question for p in parts_of("The telephone: what it is and why it matters?")] == [
        "What is the telephone?", "Why does the telephone matter?"]
    assert parts_of("DNA: its history and one interesting fact?")[0].question == "What is the history of DNA?"
    # a part that is not known, or a part named twice, is no split
    assert parts_of("Tell me about salt: what it is and who sells it.") is None
    assert parts_of("Tell me about salt: its history and its history.") is None


def _frame_of(frame: str, prompt: str) -> bool:
    import re

    pattern = re.escape(frame).replace(r"\{t\}", ".+?").replace(r"\{T\}", ".+?").replace(r"\{parts\}", ".+")
    return re.fullmatch(pattern, prompt) is not None


def test_part_problem():
    assert part_problem("Salt is a mineral.") is None
    assert part_problem("Salt is used in:\n\n- cooking\n- roads") == "part_not_one_paragraph"
    assert part_problem("Salt is used in") == "part_unfinished"
    assert part_problem("  ") == "part_empty"


class _Recorder:
    """The engine, with each request's messages and streamed text recorded."""

    def __init__(self, engine):
        self.engine, self.asked = engine, []

    def stream(self, messages, **kw):
        from aspd_local.events import SerialDelta

        rec = {"messages": messages, "text": ""}
        self.asked.append(rec)
        inner = self.engine.stream(messages, **kw)

        def gen():
            try:
                for ev in inner:
                    if isinstance(ev, SerialDelta):
                        rec["text"] += ev.text
                    yield ev
            finally:
                inner.close()

        return gen()


def test_by_parts_asks_each_part_alone_and_keeps_the_models_text(q4_path):
    prompt = {"id": "m1", "category": "multi_part", "count": 2,
              "prompt": "Tell me what salt is and how it works."}
    settings = AnswerSettings(max_tokens=40, repeat_penalties=(1.0,), by_parts=True)
    with make_engine(q4_path, n_ctx=2048, max_branches=2, max_draft_paths=1) as e:
        spy = _Recorder(e)
        row = answer_row(spy, prompt, settings)
        assert e.check_cache() == []
    shots = shots_named(settings.fewshot)
    # one request per part, each the example turns and the part's own question, nothing of the other part
    assert [r["messages"] for r in spy.asked] == [messages_for(p["question"], shots) for p in row["parts"]]
    assert [p["question"] for p in row["parts"]] == ["What is salt?", "How does salt work?"][:len(spy.asked)]
    for p, r in zip(row["parts"], spy.asked):  # the part's answer is the model's text, cut where a turn ends
        assert p["answer"] and r["text"].startswith(p["answer"])
    if row["rejected"] is None:
        assert len(row["parts"]) == 2 and row["answer"] == compose(parts_of(prompt["prompt"]),
                                                                   [p["answer"] for p in row["parts"]])
        assert row["count_ok"] is True
    else:  # a part the base model answered with a list, or cut off: the row is dropped, with the reason
        assert row["rejected"].startswith("part: ") and row["parts"][-1]["problems"] and row["answer"] == ""


def test_build_takes_the_part_by_part_answer_in_place_of_the_whole_one(tmp_path):
    whole = [{"id": "s1", "category": "serial_fact", "prompt": "What is the capital of Peru?",
              "answer": "The capital of Peru is Lima.", "ended": "turn"},
             {"id": "m1", "category": "multi_part", "prompt": "Tell me what salt is and how it works.",
              "answer": "Salt is a mineral.", "ended": "turn", "count": 2}]
    parts = parts_of(whole[1]["prompt"])
    by_parts = [{**whole[1], "answer": compose(parts, ["Salt is a white mineral that people eat every day.",
                                                       "It dissolves in water and gives food a salty taste."]),
                 "parts": [{"title": p.title} for p in parts]}]
    a, b = tmp_path / "answers.jsonl", tmp_path / "answers_parts.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in whole))
    b.write_text("".join(json.dumps(r) + "\n" for r in by_parts))
    assert [r["answer"] for r in merged_answers([a, b])] == [whole[0]["answer"], by_parts[0]["answer"]]
    stats = build_dataset([a, b], tmp_path, None, log=lambda m: None)
    out = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == ["s1", "m1"]
    assert [br["title"] for br in out[1]["segments"][0]["branches"]] == ["What it is", "How it works"]
    assert stats["answers_by_parts"] == {"answers": 1, "kept": 1} and stats["answers"] == 2
    # alone, the whole answer (prose) gives no row for the multi-part prompt
    assert build_dataset(a, tmp_path / "whole", None, log=lambda m: None)["rows"] == 1
