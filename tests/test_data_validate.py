"""Validation of blocks (branch count, branch length, titles), answer quality filters, and the build stage
end to end on hand-written answers (no model: tokens counted as words)."""

from __future__ import annotations

import json

from aspd_local.data.build import BuildSettings, build_dataset, render_json
from aspd_local.data.fewshot import turn_end
from aspd_local.data.quality import answer_problems, ends_cleanly
from aspd_local.data.segments import Block, Branch, Serial
from aspd_local.data.validate import Rules, block_problems, render_problems


def words(s):
    return s.split()


GOOD = Block([Branch("Red", "1. **Red**: the color of fire and of ripe strawberries.\n"),
              Branch("Blue", "2. **Blue**: the color of the sky and of the deep sea.\n")])


def test_good_block_passes():
    assert block_problems(GOOD, words) == []


def test_one_branch_is_rejected():
    assert "one_branch" in block_problems(Block(GOOD.branches[:1]), words)


def test_short_branch_is_rejected():
    b = Block([GOOD.branches[0], Branch("Blue", "2. Blue\n")])
    assert block_problems(b, words) == ["short_branch"]
    assert block_problems(b, words, Rules(min_branch_tokens=2)) == []


def test_duplicate_titles_are_rejected():
    b = Block([GOOD.branches[0], Branch("red", GOOD.branches[1].content)])
    assert "duplicate_titles" in block_problems(b, words)


def test_bad_titles_are_rejected():
    for t in ("", "a: b", "one two three four five six", "line\nbreak", "x" * 60):
        b = Block([GOOD.branches[0], Branch(t, GOOD.branches[1].content)])
        assert "bad_title" in block_problems(b, words), t


def test_render_mismatch_is_caught():
    segs = [Serial("Colors:\n"), GOOD]
    answer = "Colors:\n" + "".join(b.content for b in GOOD.branches)
    assert render_problems(answer, segs) == []
    assert render_problems(answer + " ", segs) == ["render_mismatch"]


def test_quality_filters():
    assert answer_problems("List fruits.", "Apples, pears and plums are fruits.") == []
    assert answer_problems("List fruits.", "ok") == ["empty"]
    assert "echoes_prompt" in answer_problems("List five fruits.", "List five fruits and more.")
    assert "repeated_line" in answer_problems("q", "- **Tea**: a hot drink.\n- **Tea**: a hot drink.\n")
    assert "copies_example" in answer_problems("q", "12 times 3 is 36.", ("12 times 3 is 36.",))
    assert ends_cleanly("It is done.") and not ends_cleanly("It is done and then the")


def test_turn_end():
    assert turn_end("Paris.\n\n### User:\nmore") == 7
    assert turn_end("## History\ntext\n") is None  # a markdown header is not a new turn
    assert turn_end("Paris.\n### Student:\nhi") == 6  # a role the model invents


def _answer(i, category, prompt, answer, rejected=None, max_tokens=200):
    row = {"id": f"p{i}", "category": category, "prompt": prompt, "answer": answer, "rejected": rejected,
           "seconds": 1.0}
    return row if max_tokens is None else {**row, "max_tokens": max_tokens}


def test_build_writes_rows_stats_and_report(tmp_path):
    rows = [
        _answer(1, "list", "Name two colors.", "Colors:\n\n" + "".join(b.content for b in GOOD.branches)),
        _answer(2, "serial_fact", "Capital of France?", "The capital of France is Paris."),
        _answer(3, "list", "Name two fruits.", "Fruits:\n- Apple\n- Pear\n"),  # branches too short
        _answer(4, "list", "Name two trees.", "x", rejected="empty"),
        _answer(5, "list", "Tell me about birds.", "Birds are animals that fly.", max_tokens=1000),  # no structure
        _answer(6, "list", "Name two birds.", "x", rejected="empty", max_tokens=None),  # written before caps were kept
    ]
    src = tmp_path / "answers.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stats = build_dataset(src, tmp_path, None, log=lambda m: None)
    out = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == ["p1", "p2"]
    for r in out:
        assert render_json(r["segments"]) == r["answer"]
        assert r["messages"] == [{"role": "user", "content": next(a["prompt"] for a in rows if a["id"] == r["id"])}]
    assert out[0]["segments"][1]["branches"][0]["title"] == "1. Red"
    assert out[1]["segments"] == [{"type": "serial", "text": "The capital of France is Paris."}]
    assert stats["rows"] == 2 and stats["parallel_rows"] == 1 and stats["share_parallel"] == 0.5
    assert stats["rejections"] == {"block: short_branch": 1, "answer: empty": 2,
                                   "serial answer to a list-style prompt": 1}
    assert stats["branches_per_block"] == {"2": 1}
    # in the order of the caps (not as text, where "1000" < "200"), answers without a recorded cap last
    assert list(stats["answers_max_tokens"].items()) == [("200", 4), ("1000", 1), ("?", 1)]
    report = (tmp_path / "report.md").read_text()
    assert (tmp_path / "stats.json").exists() and "Rejections" in report
    assert "greedy, at most 200/1000 tokens (1 answers from before answers recorded their cap)," in report
    kept = build_dataset(src, tmp_path, None, BuildSettings(serial_rows_from_list_prompts=True), log=lambda m: None)
    assert kept["rows"] == 3 and kept["serial_rows"] == 2
