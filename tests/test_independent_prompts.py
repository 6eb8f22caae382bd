"""The hand-written independent evaluation set (issue 13): well-formed, varied, with a real serial share, and
no copy of a training prompt (benchmarks/overlap_check.py reports the n-gram overlap in full)."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from aspd_local.data import paths
from aspd_local.data.prompts import PARALLEL_CATEGORIES, SERIAL_CATEGORIES

ROOT = Path(__file__).resolve().parents[1]


def _overlap_module():
    spec = importlib.util.spec_from_file_location("overlap_check", ROOT / "benchmarks" / "overlap_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module", params=paths.INDEPENDENT_SETS, ids=lambda p: p.name)
def rows(request) -> list[dict]:
    SET = request.param
    out = []
    for n, line in enumerate(SET.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                pytest.fail(f"{SET}:{n}: not JSON ({e})")
    return out


def test_the_set_is_large_and_unique(rows):
    assert len(rows) >= 200
    assert all(isinstance(r.get("id"), str) and isinstance(r.get("prompt"), str) and r["prompt"].strip()
               for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    ov = _overlap_module()
    assert len({ov.normalized(r["prompt"]) for r in rows}) == len(rows)


def test_kinds_categories_and_counts_are_valid(rows, request):
    for r in rows:
        assert r["kind"] in ("list", "serial"), r["id"]
        if r["kind"] == "list":
            assert r["category"] in PARALLEL_CATEGORIES, r["id"]
        else:
            assert r["category"] in SERIAL_CATEGORIES, r["id"]
            assert r["count"] is None, r["id"]
        c = r["count"]
        assert c is None or (type(c) is int and 2 <= c <= 7), r["id"]
        if r.get("count_form") == "compound":
            assert "+" in r["count_detail"] and sum(int(x.split()[0]) for x in r["count_detail"].split("+")) == c
    kinds = Counter(r["kind"] for r in rows)
    assert kinds["serial"] / len(rows) >= 0.25
    assert set(Counter(r["category"] for r in rows)) == set(PARALLEL_CATEGORIES) | set(SERIAL_CATEGORIES)
    assert sum(bool(r.get("looks_list")) for r in rows if r["kind"] == "serial") >= 25
    # explicit counts from 2 to 7, in digits and in words, and implicit lists with no count
    listed = [r for r in rows if r["kind"] == "list"]
    assert {r["count"] for r in listed} >= {2, 3, 4, 5, 6, 7}
    if request.node.callspec.params["rows"] != paths.INDEPENDENT_2:  # the second set was written all counted
        assert None in {r["count"] for r in listed}
    forms = Counter(r.get("count_form") for r in listed if r["count"] is not None)
    assert forms["digits"] >= 10 and forms["words"] >= 10


def test_no_training_prompt_is_copied(rows):
    ov = _overlap_module()
    training, _ = ov.load_training()  # the stored prompt files, or regenerated (under a second)
    assert len(training) >= 720  # 400 + 320, and the issue-13 prompts once written
    rep = ov.compare([r["prompt"] for r in rows], [t["prompt"] for t in training], top=1)
    assert rep["exact_duplicates"] == 0, rep["exact_duplicate_prompts"]
    assert rep["near_duplicates"] == [], rep["near_duplicates"]
