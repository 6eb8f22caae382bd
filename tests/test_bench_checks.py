"""The objective quality checks, against answers whose counts are worked out by hand."""

import pytest

from aspd_local.bench.checks import check_answer, headline, objective_checks
from aspd_local.data.quality import asked_count, item_name, list_items


@pytest.mark.parametrize("prompt, n", [
    ("List five fruits and say one thing about each.", 5),
    ("Give me 3 tips for better sleep.", 3),
    ("Could you suggest a couple of board games?", 2),
    ("What are seven wonders of the ancient world?", 7),
    ("Explain photosynthesis in 3 sentences.", None),  # an amount of text, not items
    ("My trip is 4 days long. What should I pack?", None),
    ("What happened in 1969?", None),
    ("What are the steps to make tea?", None),
])
def test_asked_count_reads_digits_and_words(prompt, n):
    assert asked_count(prompt) == n


def test_items_are_top_level_list_lines_of_any_marker():
    text = ("Here you go:\n\n1. **Apple**: red.\n   - a sub point\n2) Pear - soft\n* Plum: dark\n"
            "- **Fig** sweet\n\nThat is all.")
    assert list_items(text) == ["**Apple**: red.", "Pear - soft", "Plum: dark", "**Fig** sweet"]
    assert [item_name(i) for i in list_items(text)] == ["apple", "pear", "plum", "fig"]
    assert list_items("No list here. Just text.\nAnd more.") == []
    # bold titles without a marker count as items too (a common plain-answer shape)
    assert len(list_items("**Cats**: independent.\n**Dogs**: loyal.")) == 2


def test_check_answer_counts_duplicates_loops_and_runaway():
    row = {"prompt": "List three fruits."}
    ok = check_answer(row, {"text": "- **Apple**: red.\n- **Pear**: soft.\n- **Plum**: dark.\n", "tokens": 20,
                            "finish_reason": "stop", "titles": [["Apple", "Pear", "Plum"]]})
    assert ok["count_ok"] and ok["items"] == 3 and not ok["duplicate_items"] and not ok["loops"]
    assert not ok["runaway"] and ok["distinct_2"] == 1.0
    dup = check_answer(row, {"text": "- **Apple**: red.\n- **Apple**: green.\n", "tokens": 9,
                             "finish_reason": "length"})
    assert dup["count_ok"] is False and dup["duplicate_items"] and dup["runaway"]
    # a block whose titles repeat is a duplicate even when the rendered items differ in case
    assert check_answer(row, {"text": "x", "titles": [["Tip", "tip"]], "tokens": 1})["duplicate_items"]
    loop = check_answer(row, {"text": "Hiking is fun.\n" * 6, "tokens": 30, "finish_reason": "stop"})
    assert loop["loops"] and loop["distinct_2"] < 0.5
    # a count field in the prompt file wins over reading the prompt
    assert check_answer({"prompt": "Three pros and three cons of X.", "count": 6},
                        {"text": "- a\n- b\n- c\n- d\n- e\n- f\n"})["count_ok"]
    assert check_answer({"prompt": "What is 2+2?"}, {"text": "4"})["count_ok"] is None


def test_aggregates_split_list_style_from_serial():
    prompts = [{"id": "l1", "prompt": "List two fruits.", "category": "list"},
               {"id": "l2", "prompt": "List three fruits.", "category": "list"},
               {"id": "s1", "prompt": "What is 2+2?", "category": "serial_math", "kind": "serial"}]
    results = [
        {"id": "l1", "mode": "parallel", "text": "- a\n- b\n", "blocks": 1, "tokens": 5, "finish_reason": "stop"},
        {"id": "l2", "mode": "parallel", "text": "- a\n- b\n", "blocks": 1, "tokens": 5, "finish_reason": "stop"},
        {"id": "s1", "mode": "parallel", "text": "Four.", "blocks": 0, "tokens": 2, "finish_reason": "stop"},
        {"id": "l1", "mode": "ar", "text": "a, b", "blocks": 0, "tokens": 4, "finish_reason": "length"},
    ]
    c = objective_checks(results, prompts)
    assert c["parallel"]["list_style"]["count_fidelity"] == {"n": 2, "yes": 1, "share": 0.5}
    assert c["parallel"]["failures"]["count"] == ["l2"]
    assert c["parallel"]["blocks_opened"]["serial"]["share"] == 0.0
    assert c["ar"]["all"]["runaway"]["yes"] == 1
    h = headline(c)
    assert h["parallel"]["count_fidelity"] == 0.5 and h["parallel"]["blocks_on_list_style"] == 1.0
    assert h["ar"]["count_fidelity"] == 0.0 and h["ar"]["prompts"] == 1
