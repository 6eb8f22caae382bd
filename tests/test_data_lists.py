"""Short lists finished item by item (aspd_local.data.lists) and serial prompts that look like lists
(aspd_local.data.prompts.looks_list_prompts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_engine

from aspd_local.data.answers import AnswerSettings, generate_answers
from aspd_local.data.build import build_dataset
from aspd_local.data.fewshot import messages_for, shots_named
from aspd_local.data.lists import finish_list, finishable, item_problem, short_list
from aspd_local.data.overlap import IndependentSet
from aspd_local.data.prompts import (PARALLEL_CATEGORIES, SERIAL_CATEGORIES, _looks_list_queues, looks_list_prompts,
                                     pair_id, paired_list_prompts)
from aspd_local.data.quality import asked_count, list_items

SHORT = ("Here are five fruits:\n\n1. **Apple**: crisp and sweet, with a thin skin that you can eat.\n"
         "2. **Banana**: soft, yellow and easy to peel, a good snack for school.\n\nFruit is good for you.")


def test_short_list_finds_a_list_with_fewer_items_than_asked():
    found = short_list(SHORT, 5)
    assert found.items == 2 and found.head.endswith("snack for school.\n") and found.tail == "\nFruit is good for you."
    assert found.marker(3) == "3. **"
    bullets = SHORT.replace("1. ", "- ").replace("2. ", "- ")
    assert short_list(bullets, 4).marker(3) == "- **"
    assert short_list(SHORT, 2) is None  # as many as asked
    assert short_list(SHORT, None) is None  # nothing asked
    assert short_list("Apples and bananas.", 5) is None  # no list
    assert short_list(SHORT.replace("2. ", "3. "), 5) is None  # numbers out of order
    assert short_list(SHORT.replace("2. ", "- "), 5) is None  # numbered and bulleted mixed
    assert short_list(SHORT.replace("1. **Apple**:", "1. Apple:"), 5) is None  # an item without a bold lead
    two_blocks = SHORT + "\n\n- **Pear**: juicy.\n- **Plum**: small.\n\nThat is all."
    assert short_list(two_blocks, 5) is None


def test_item_problem():
    assert item_problem("3. **Cherry**: small and red.", "3. **") is None
    assert item_problem("- **Cherry:** small and red.", "- **") is None
    assert item_problem("3. **", "3. **") == "item_empty"
    assert item_problem("3. **Cherry**: small and", "3. **") == "item_unfinished"
    assert item_problem("3. **Cherry and more.", "3. **") == "item_without_lead"


def test_finish_list_writes_each_item_as_the_models_greedy_continuation(q4_path, tmp_path):
    row = {"id": "f1", "category": "list", "prompt": "Name five fruits.", "count": 5, "answer": SHORT,
           "rejected": None, "count_ok": False, "fewshot": "counted"}
    assert finishable([row, {**row, "id": "f2", "count_ok": True}]) == [row]
    settings = AnswerSettings(repeat_penalties=(1.0,))
    with make_engine(q4_path, n_ctx=2048, max_branches=2, max_draft_paths=1) as e:
        out = finish_list(e, row, settings)
        assert e.check_cache() == []
        if out["rejected"] is None:
            assert out["answer"].startswith(short_list(SHORT, 5).head) and out["answer"].endswith(
                "\nFruit is good for you.")
            assert len(list_items(out["answer"])) == 5 and out["count_ok"] is True
        else:  # an item the model wrote was unusable: the row says why and keeps no answer
            assert out["rejected"].startswith("items: ") and out["answer"] == ""
        # the third item is what a greedy decode after the answer so far and the marker gives, up to its line end
        shots = shots_named("counted")
        head = short_list(SHORT, 5).head + "3. **"
        ref = e.generate(e.prompt_tokens(messages_for(row["prompt"], shots)) + e.tokenize(head), mode="ar",
                         max_tokens=60, speculate="none").text
        if out["rejected"] is None:
            third = out["answer"][len(short_list(SHORT, 5).head):].split("\n")[0]
            assert third == "3. **" + ref.split("\n")[0].rstrip()
        # run as a stage, it resumes by id like the answer stage
        path = tmp_path / "answers_lists.jsonl"
        res = generate_answers(e, [row], path, settings, log=lambda m: None, answer=finish_list)
        assert res["new"] == 1 and generate_answers(e, [row], path, settings, log=lambda m: None,
                                                    answer=finish_list)["new"] == 0
        assert e.check_cache() == []
    assert json.loads(path.read_text())["original_answer"] == SHORT


def test_build_takes_the_finished_list_in_place_of_the_short_one(tmp_path):
    whole = {"id": "f1", "category": "list", "prompt": "Name three fruits.", "count": 3, "answer":
             SHORT.replace("five", "three"), "ended": "turn", "rejected": None, "count_ok": False}
    finished = {**whole, "answer": whole["answer"].replace("school.\n", "school.\n3. **Cherry**: small, round and dark red, "
                                                          "with a hard stone in the middle.\n"),
                "original_answer": whole["answer"], "count_ok": True}
    a, b = tmp_path / "answers.jsonl", tmp_path / "answers_lists.jsonl"
    a.write_text(json.dumps(whole) + "\n")
    b.write_text(json.dumps(finished) + "\n")
    assert build_dataset(a, tmp_path / "short", None, log=lambda m: None)["rows"] == 0  # count filter
    stats = build_dataset([a, b], tmp_path, None, log=lambda m: None)
    assert stats["answers_finished_lists"] == {"answers": 1, "kept": 1} and stats["rows"] == 1
    rows = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert [b["title"] for b in rows[0]["segments"][1]["branches"]] == ["1. Apple", "2. Banana", "3. Cherry"]


def test_looks_list_prompts_are_serial_ask_no_count_and_are_new():
    rows = looks_list_prompts([], 300)
    assert len(rows) == 300 and len({r["prompt"] for r in rows}) == 300 and len({r["id"] for r in rows}) == 300
    assert all(r["category"] in SERIAL_CATEGORIES and r["looks_list"] and r["count"] is None for r in rows)
    assert [r for r in rows if asked_count(r["prompt"]) is not None] == []  # "in two sentences" is no list
    assert looks_list_prompts([], 100) == rows[:100]
    again = looks_list_prompts(rows[:50], 50)
    assert not {r["prompt"] for r in again} & {r["prompt"] for r in rows[:50]}
    close = IndependentSet.load()
    assert len(close) >= 400 and [r["prompt"] for r in rows if close.too_close(r["prompt"])] == []


@pytest.mark.parametrize("category", ["steps", "tips", "list", "pros_cons", "comparison"])
def test_looks_list_families_cover_every_list_style_topic_pool(category):
    rows = looks_list_prompts([], 2000)
    from aspd_local.data.prompts import LOOKS_LIST_FAMILIES

    fams = [f for f in LOOKS_LIST_FAMILIES if f.topics == category]
    assert fams and all(any(r["prompt"].startswith(t.text.split("{")[0]) for r in rows)
                        for f in fams for t in f.templates if not t.text.startswith("{"))


def test_mix_rows_keeps_the_new_rows_and_a_seeded_sample_of_the_old(tmp_path):
    import subprocess
    import sys

    def row(i, text):
        return {"id": f"r{i}", "segments": [{"type": "serial", "text": text}]}

    old = [row(i, "old") for i in range(10)]
    new = old[:8] + [row(3, "changed"), row(20, "new")]  # r3 has a new answer: it counts as new
    (tmp_path / "old.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    (tmp_path / "new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new))
    out = tmp_path / "mix.jsonl"
    cmd = [sys.executable, "scripts/mix_rows.py", str(tmp_path / "new.jsonl"), str(tmp_path / "old.jsonl"),
           "--replay", "3", "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert p.returncode == 0 and "5 rows" in p.stderr and "2 new, 3 replayed" in p.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert row(3, "changed") in rows and row(20, "new") in rows and len(rows) == 5
    assert [r for r in rows if r in old and r not in new] == []
    assert rows == [r for r in new if r in rows]  # NEW's order
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert again.returncode == 0 and out.read_text() == "".join(json.dumps(r) + "\n" for r in rows)


def test_mix_rows_can_keep_fewer_new_serial_rows(tmp_path):
    import subprocess
    import sys

    def row(i, block):
        seg = ({"type": "block", "branches": [{"title": "A", "content": "a"}, {"title": "B", "content": "b"}]}
               if block else {"type": "serial", "text": "s"})
        return {"id": f"r{i}", "segments": [seg]}

    old = [row(i, True) for i in range(4)]
    new = old + [row(10 + i, i % 2 == 0) for i in range(10)]  # 5 new block rows, 5 new serial rows
    (tmp_path / "old.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    (tmp_path / "new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new))

    def run(*extra):
        out = tmp_path / "mix.jsonl"
        p = subprocess.run([sys.executable, "scripts/mix_rows.py", str(tmp_path / "new.jsonl"),
                            str(tmp_path / "old.jsonl"), "--replay", "2", "--out", str(out), *extra],
                           capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        return p, ([json.loads(x) for x in out.read_text().splitlines()] if p.returncode == 0 else None)

    p, rows = run("--new-serial", "2", "--serial-seed", "5")
    assert p.returncode == 0 and "9 new, 2 replayed" not in p.stderr and "7 new, 2 replayed" in p.stderr
    fresh = [r for r in rows if r not in old]
    assert sum(1 for r in fresh if r["segments"][0]["type"] == "block") == 5  # every new block row stays
    assert sum(1 for r in fresh if r["segments"][0]["type"] == "serial") == 2
    assert run("--new-serial", "2", "--serial-seed", "5")[1] == rows  # seeded
    p, _ = run("--new-serial", "-1")
    assert p.returncode == 2 and "--new-serial must be 0 or more" in p.stderr


def test_select_rows_by_kind_number_and_membership(tmp_path):
    import subprocess
    import sys

    def row(i, prompt, block, category="tips"):
        seg = ({"type": "block", "branches": [{"title": "A", "content": "a"}, {"title": "B", "content": "b"}]}
               if block else {"type": "serial", "text": "s"})
        return {"id": f"r{i}", "category": category, "messages": [{"role": "user", "content": prompt}],
                "segments": [seg]}

    rows = [row(1, "Give me three tips for sleeping.", True), row(2, "Any tips for sleeping?", True),
            row(3, "What is sleep?", False, "serial_fact"), row(4, "How do I sleep and why?", True, "multi_part"),
            row(5, "What helps with sleep?", True), row(2, "Any tips for sleeping?", True)]  # r2 twice
    src, other = tmp_path / "rows.jsonl", tmp_path / "mix.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    other.write_text(json.dumps(rows[4]) + "\n")
    out = tmp_path / "out.jsonl"

    def run(*args):
        p = subprocess.run([sys.executable, "scripts/select_rows.py", str(src), "--out", str(out), *args],
                           capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        return p, ([json.loads(x)["id"] for x in out.read_text().splitlines()] if p.returncode == 0 else None)

    assert run("--block", "--numberless")[1] == ["r2", "r4", "r5"]
    assert run("--block", "--numberless", "--skip-category", "multi_part", "--not-in", str(other))[1] == ["r2"]
    assert run("--block", "--counted")[1] == ["r1"]
    assert run("--serial")[1] == ["r3"]
    p, picked = run("--sample", "2", "--seed", "3")
    assert "2 rows" in p.stderr and len(picked) == 2 and run("--sample", "2", "--seed", "3")[1] == picked
    p, _ = run("--block", "--serial")
    assert p.returncode == 2 and "not allowed with" in p.stderr


def test_select_rows_keeps_the_twins_of_rows(tmp_path):
    import subprocess
    import sys

    rows = [{"id": i, "category": "tips", "messages": [{"role": "user", "content": "Any tips?"}],
             "segments": [{"type": "serial", "text": "s"}]} for i in ("s0000000a", "s0000000b", "t0000000b", "p0001")]
    src, twins, out = tmp_path / "rows.jsonl", tmp_path / "twins.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    twins.write_text(json.dumps({"id": "t0000000a"}) + "\n" + json.dumps({"id": "s0000000b"}) + "\n")
    p = subprocess.run([sys.executable, "scripts/select_rows.py", str(src), "--twins-of", str(twins), "--out", str(out)],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert p.returncode == 0, p.stderr
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["s0000000a", "t0000000b"]


def test_pair_id_maps_a_serial_prompt_and_its_twin():
    assert pair_id("sc9f9f6b8") == "tc9f9f6b8" and pair_id("tc9f9f6b8") == "sc9f9f6b8"
    assert [pair_id(i) for i in ("p0001", "m1234abcd", "q8447555f", "s123", "sXYZ9f6b8")] == [None] * 5


def test_paired_list_prompts_ask_the_same_topic_as_a_list_without_a_number():
    serial = looks_list_prompts([], 300)
    twins = paired_list_prompts(serial + [{"id": "p0001", "prompt": "What is sleep?", "category": "serial_fact"}], [])
    assert paired_list_prompts(serial, []) == twins  # seeded; a row not made by looks_list_prompts is skipped
    taken = {twins[0]["prompt"]}
    other = paired_list_prompts(serial, [{"prompt": twins[0]["prompt"]}])  # a text already asked: another template
    assert other[0]["id"] == twins[0]["id"] and other[0]["prompt"] != twins[0]["prompt"] and other[1:] == twins[1:]
    assert 280 <= len(twins) <= 300 and len({t["prompt"] for t in twins}) == len(twins)
    by_id = {r["id"]: r for r in serial}
    topics = {row["prompt"]: t for q in _looks_list_queues(0) for row, t, _ in q}
    for tw in twins:
        s = by_id[tw["twin_of"]]
        assert tw["id"] == pair_id(s["id"]) and tw["category"] in PARALLEL_CATEGORIES and tw["count"] is None
        assert asked_count(tw["prompt"]) is None
        topic = topics[s["prompt"]]
        for part in (topic if isinstance(topic, tuple) else (topic,)):
            assert str(part).lower() in tw["prompt"].lower() and str(part).lower() in s["prompt"].lower()
    assert len({t["category"] for t in twins}) == 5  # steps, tips, list, pros_cons, comparison
