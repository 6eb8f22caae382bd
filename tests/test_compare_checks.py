"""benchmarks/compare_checks.py: two quality reports side by side, with paired counts worked out by hand."""

import importlib.util
import json
from pathlib import Path

import pytest

from aspd_local.bench.checks import headline, objective_checks

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cc():
    spec = importlib.util.spec_from_file_location("compare_checks", ROOT / "benchmarks" / "compare_checks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PROMPTS = [{"id": f"p{i}", "prompt": "List three fruits.", "category": "list", "kind": "list", "count": 3}
           for i in range(4)] + [{"id": "s0", "prompt": "What is rain?", "category": "serial", "kind": "serial"}]
GOOD = "- **Apple**: red.\n- **Pear**: soft.\n- **Plum**: dark.\n"
TWO = "- **Apple**: red.\n- **Pear**: soft.\n"
DUP = "- **Apple**: red.\n- **Apple**: red.\n- **Plum**: dark.\n"


def report(texts: dict[str, str], blocks: int = 1, tokens_per_s=(10.0, 15.0)) -> dict:
    results = []
    for mode in ("ar", "parallel"):
        for p in PROMPTS:
            text = texts.get(p["id"], "Rain is water falling from clouds.")
            results.append({"id": p["id"], "mode": mode, "text": text, "tokens": 20, "finish_reason": "stop",
                            "blocks": blocks if mode == "parallel" and p["kind"] == "list" else 0})
    checks = objective_checks(results, PROMPTS)
    return {"prompts_file": "x.jsonl", "checks": checks, "checks_headline": headline(checks),
            "summary": {"ar": {"tokens_per_s": tokens_per_s[0]}, "parallel": {"tokens_per_s": tokens_per_s[1]}}}


def test_sign_test_values(cc):
    assert cc.sign_test(0, 0) == 1.0
    assert cc.sign_test(5, 0) == pytest.approx(2 / 32)
    assert cc.sign_test(3, 3) == 1.0
    assert cc.sign_test(10, 0) < 0.01 and cc.sign_test(0, 10) == cc.sign_test(10, 0)


def test_compare_counts_the_prompts_only_one_model_gets_right(cc):
    current = report({"p0": GOOD, "p1": TWO, "p2": TWO, "p3": DUP})
    candidate = report({"p0": TWO, "p1": GOOD, "p2": GOOD, "p3": GOOD}, tokens_per_s=(10.0, 12.0))
    c = cc.compare(current, candidate)
    cf = c["checks"]["count_fidelity"]
    # current right on p0, p3 (DUP has three lines); candidate right on p1, p2, p3
    assert (cf["current"], cf["candidate"]) == (0.5, 0.75) and cf["better"] is True
    assert (cf["prompts"], cf["only_current"], cf["only_candidate"]) == (4, 1, 2)
    dup = c["checks"]["duplicate_items"]
    assert (dup["current"], dup["candidate"], dup["better"]) == (0.2, 0.0, True)
    assert (dup["only_current"], dup["only_candidate"]) == (0, 1)  # only the candidate is free of it on p3
    assert c["speed_parallel_vs_ar"] == {"current": 1.5, "candidate": 1.2}
    # where the count misses are: per category and asked number, [prompts, current met, candidate met]
    assert c["count_groups"] == {"list": [4, 2, 3], "asked 2-4": [4, 2, 3]}
    assert c["targets"]["count_fidelity"]["met"] is False and c["targets"]["duplicate_items"]["met"] is True
    assert c["targets"]["blocks_on_serial"]["met"] is True and c["targets"]["blocks_on_list_style"]["met"] is True


def test_blocks_are_paired_on_their_own_prompts(cc):
    """Blocks on list-style prompts count the four list prompts, blocks on serial prompts the serial one."""
    current = report({"p0": GOOD, "p1": GOOD, "p2": GOOD, "p3": GOOD})
    candidate = report({"p0": GOOD, "p1": GOOD, "p2": GOOD, "p3": GOOD}, blocks=0)
    c = cc.compare(current, candidate)
    lst, ser = c["checks"]["blocks_on_list_style"], c["checks"]["blocks_on_serial"]
    assert (lst["current"], lst["candidate"], lst["better"]) == (1.0, 0.0, False)
    assert (lst["prompts"], lst["only_current"], lst["only_candidate"]) == (4, 4, 0)
    assert lst["p"] == pytest.approx(2 / 16)
    assert (ser["prompts"], ser["only_current"], ser["only_candidate"], ser["better"]) == (1, 0, 0, None)
    # parallel vs its own ar compares answers, not blocks (ar opens none)
    assert set(c["candidate_parallel_vs_ar"]) == {"count_fidelity", "duplicate_items", "loops", "runaway",
                                                   "distinct_2"}


def test_speed_is_the_reports_own_ratio_where_it_has_one(cc):
    r = report({})
    assert cc.speed(r) == 1.5  # an older report: from the tokens per second
    r["summary"]["parallel"]["speedup_vs_ar"] = 1.25
    assert cc.speed(r) == 1.25


def test_cli_refuses_reports_of_other_prompts(cc, tmp_path, capsys):
    a, b = report({}), report({})
    b["prompts_file"] = "other.jsonl"
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    (tmp_path / "bad.json").write_text("{}")
    assert cc.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    assert "different prompt files" in capsys.readouterr().err
    assert cc.main([str(tmp_path / "a.json"), str(tmp_path / "bad.json")]) == 2
    assert "not a `bench --quality` report" in capsys.readouterr().err
    assert cc.main([str(tmp_path / "a.json"), str(tmp_path / "a.json"), "--json", str(tmp_path / "c.json")]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["checks"]["loops"]["better"] is None
