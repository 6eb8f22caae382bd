"""Issue 13's build filters on hand-made answers (no model: tokens counted as words): an answer with another
number of items than the prompt asks for, a duplicate item, repeated, nested or placeholder titles, a list
for a serial prompt, an answer cut by the token cap, and a prompt of the independent set are dropped, each
counted under its reason; the answer that gets everything right is kept."""

from __future__ import annotations

import json

from aspd_local.data.build import BuildSettings, asked_of, build_dataset
from aspd_local.data.extract import extract
from aspd_local.data.filters import count_problems, is_generic, title_problems, title_words
from aspd_local.data.overlap import IndependentSet


def _a(id_, prompt, answer, category="list", count=None, **kw):
    row = {"id": id_, "category": category, "prompt": prompt, "answer": answer, "rejected": None,
           "ended": "turn", "seconds": 1.0}
    if count is not None or category.startswith("serial"):
        row["count"] = count
    row.update(kw)
    return row


GOOD = ("Here are three colors:\n\n"
        "1. **Red**: the color of fire and of ripe strawberries in June.\n"
        "2. **Blue**: the color of a clear sky and of the deep sea.\n"
        "3. **Yellow**: the color of sunlight, lemons and fresh butter.\n\n"
        "Mixing them gives the others.")


def _build(tmp_path, rows, **kw):
    src = tmp_path / "answers.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stats = build_dataset(src, tmp_path, None, BuildSettings(**kw), log=lambda m: None)
    out = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    return stats, [r["id"] for r in out]


def test_title_rules():
    assert title_words("2. The Green apples!") == ("green", "apple")
    assert [is_generic(t) for t in ("Tip", "Reason 2", "3. Step one", "Item 3", "Key point", "", "Red", "Pros")] == \
        [True, True, True, True, True, True, False, False]
    assert title_problems(["1. Red", "2. Blue", "3. Yellow"]) == []
    assert title_problems(["Pros", "Cons"]) == [] and title_problems(["Advantages", "Disadvantages"]) == []
    assert title_problems(["Cost 1", "Cost 2"]) == ["duplicate_titles"]  # unique_titles' numbered copies
    assert title_problems(["Reason", "Reason"]) == ["generic_title", "duplicate_titles"]
    assert title_problems(["Apples", "Green apples"]) == ["near_duplicate_titles"]
    assert title_problems(["1. Red", "2. red."]) == ["duplicate_titles"]


def test_count_reads_items_and_branches():
    assert count_problems(GOOD, extract(GOOD), 3) == []
    assert count_problems(GOOD, extract(GOOD), 4) == ["count_mismatch"]
    assert count_problems(GOOD, extract(GOOD), None) == []
    text = "Pros:\n\n- **Cheap**: costs very little to run.\n- **Fast**: saves a lot of time.\n"
    assert count_problems(text, extract(text), 2) == []


def test_build_drops_each_fault_under_its_reason(tmp_path):
    two = GOOD.replace("3. **Yellow**: the color of sunlight, lemons and fresh butter.\n", "")
    dup_items = GOOD.replace("**Yellow**: the color of sunlight", "**Red**: the color of sunset")
    dup_titles = ("Colors:\n\n- **Red 1**: the color of fire and of ripe strawberries.\n"
                  "- **Red 2**: the color of a cardinal bird in the snow.\n")
    generic = ("Tips:\n\n- **Tip 1**: drink a glass of water every morning.\n"
               "- **Tip 2**: walk for half an hour after lunch.\n")
    nested = ("Fruits:\n\n- **Apples**: crisp and sweet, they keep for months.\n"
              "- **Green apples**: sour, they are best for baking pies.\n")
    rows = [
        _a("good", "Name three colors.", GOOD, count=3),
        _a("count", "Name three colors.", two, count=3),
        _a("dup_items", "Name three colors.", dup_items, count=3),
        _a("dup_titles", "Name two colors.", dup_titles, count=2),
        _a("generic", "Give me two tips for staying healthy.", generic, category="tips", count=2),
        _a("nested", "What are some fruits?", nested, count=None),
        _a("serial_list", "What is the capital of France?", GOOD, category="serial_fact"),
        _a("cut", "Name three colors.", GOOD, count=3, ended="length"),
        _a("indep", "Could you name three colors, please?", GOOD, count=3),
        _a("serial_ok", "What is the capital of France?", "The capital of France is Paris.", category="serial_fact"),
    ]
    stats, kept = _build(tmp_path, rows, independent=IndependentSet(["Could you name three colors?"]))
    assert kept == ["good", "serial_ok"]
    assert stats["rejections"] == {
        "filter: count_mismatch": 1, "filter: duplicate_items": 1, "filter: duplicate_titles": 1,
        "filter: generic_title": 1, "filter: near_duplicate_titles": 1, "list answer to a serial prompt": 1,
        "filter: token_cap": 1, "prompt: near the independent evaluation set": 1}
    assert stats["independent_set"] == {"prompts": 1, "threshold": 0.8, "answers_dropped": 1}
    assert stats["count"]["3"] == {"answers": 4, "usable": 4, "items_match": 3, "rows": 1}  # (indep: before)
    assert "Prompts that ask for N items" in (tmp_path / "report.md").read_text()
    # without issue 13's filters, only the checks before it apply
    stats, kept = _build(tmp_path, rows, filters=False)
    assert set(kept) == {"good", "count", "dup_items", "dup_titles", "generic", "nested", "cut", "indep", "serial_ok"}


def test_the_count_of_an_older_answer_comes_from_its_prompt_row():
    old = {"id": "p1", "category": "multi_part", "prompt": "Tell me about salt: what it is, why it matters, and how "
           "people use it.", "answer": "x"}
    assert asked_of(old) is None  # the words name no number
    assert asked_of(old, {"p1": {"prompt": old["prompt"], "count": 3}}) == 3
    assert asked_of(old, {"p1": {"prompt": "another text", "count": 3}}) is None  # another prompt, same id
    assert asked_of({**old, "category": "list", "prompt": "Name four birds."}) == 4
    assert asked_of({**old, "category": "serial_math", "prompt": "What is 7 + 8?"}) is None
    assert asked_of({**old, "count": 2}) == 2
