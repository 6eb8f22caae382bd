"""The prompt sets: deterministic, with a real serial share, and evaluation prompts on topics never used in
training; the first sets unchanged (their answers are keyed by id); the larger set of issue 13 (phrasings,
counts 2..7 in digits and words, serial prompts that look list-like) and the independent set kept out."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from aspd_local.data import paths
from aspd_local.data import prompts as P
from aspd_local.data.overlap import IndependentSet
from aspd_local.data.quality import asked_count


def test_prompts_are_deterministic():
    assert P.build_prompt_sets(seed=0) == P.build_prompt_sets(seed=0)
    assert P.build_prompt_sets(seed=0) != P.build_prompt_sets(seed=1)


def test_training_prompts_are_varied_with_a_serial_share():
    train, _ = P.build_prompt_sets()
    assert len(train) == 400
    assert len({r["id"] for r in train}) == len({r["prompt"] for r in train}) == 400
    cats = Counter(r["category"] for r in train)
    assert set(cats) == set(P.PARALLEL_CATEGORIES) | set(P.SERIAL_CATEGORIES)
    serial = sum(cats[c] for c in P.SERIAL_CATEGORIES)
    assert 0.2 <= serial / len(train) <= 0.3


def test_eval_prompts_are_disjoint_from_training_prompts_and_topics():
    train, evals = P.build_prompt_sets()
    assert sum(r["category"] in P.PARALLEL_CATEGORIES for r in evals) == 40
    assert sum(r["category"] in P.SERIAL_CATEGORIES for r in evals) == 20
    assert all(set(r) - {"count_form"} == {"id", "prompt", "category", "count"} for r in evals)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in evals}
    # no topic of any family appears in both sets
    for fam in P.FAMILIES:
        for topic in fam.topics:
            probe = [str(x) for x in topic] if isinstance(topic, tuple) else [topic]
            in_train = any(all(f" {w}" in f" {r['prompt']}" for w in probe) for r in train
                           if r["category"] == fam.category)
            in_eval = any(all(f" {w}" in f" {r['prompt']}" for w in probe) for r in evals
                          if r["category"] == fam.category)
            assert not (in_train and in_eval), (fam.category, topic)


def test_extra_prompts_are_new_and_keep_the_evaluation_topics_out():
    train, evals = P.build_prompt_sets()
    extra = P.extra_prompts(train, 300)
    assert len(extra) == 300 and extra == P.extra_prompts(train, 300)
    assert all(r["category"] in P.PARALLEL_CATEGORIES for r in extra)
    prompts = {r["prompt"] for r in extra}
    assert len(prompts) == 300
    assert not prompts & {r["prompt"] for r in train} and not prompts & {r["prompt"] for r in evals}
    _, eval_pool = P._pools(0)
    assert not prompts & {p for ps in eval_pool.values() for p in ps}


def _first_sets():
    train, evals = P.build_prompt_sets()
    return train, P.extra_prompts(train, 320), evals


@pytest.fixture(scope="module")
def more():
    train, extra, _ = _first_sets()
    return P.more_prompts(train + extra, 2000)


def test_the_first_sets_keep_their_ids_and_texts():
    """The shipped answers (answers.jsonl) are keyed by these ids: the same (id, prompt, category) as the
    files the shipped delta was made from; only ``count`` (and ``count_form``) were added."""
    train, extra, evals = _first_sets()
    for rows, name in ((train, paths.TRAIN_PROMPTS), (extra, paths.EXTRA_PROMPTS), (evals, paths.EVAL_PROMPTS)):
        f = paths.DATA_DIR / name
        if not f.exists():
            continue
        stored = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        key = lambda r: (r["id"], r["prompt"], r["category"])  # noqa: E731
        assert [key(r) for r in rows] == [key(r) for r in stored], name
    assert [r["id"] for r in train[:2]] == ["p0000", "p0001"] and extra[0]["id"] == "x0000"
    # counts of the first sets: the number word of the prompt; the three named parts of multi_part
    for r in train + extra + evals:
        if r["category"] == "multi_part":
            assert r["count"] == 3
        elif r["category"].startswith("serial"):
            assert r["count"] is None
        else:
            assert r["count"] == asked_count(r["prompt"]) and r["count"] in (None, 3, 4, 5)


def test_more_prompts_sizes_counts_and_phrasings(more):
    train, extra, _ = _first_sets()
    allrows = train + extra + more
    kinds = Counter("serial" if r["category"] in P.SERIAL_CATEGORIES else "list" for r in allrows)
    assert kinds["list"] >= 1600 and kinds["serial"] >= 400
    more_kinds = Counter("serial" if r["category"] in P.SERIAL_CATEGORIES else "list" for r in more)
    assert more_kinds["serial"] == 400 and more_kinds["list"] == 1600
    assert set(r["category"] for r in more) == set(P.PARALLEL_CATEGORIES) | set(P.SERIAL_CATEGORIES)
    texts = [r["prompt"] for r in allrows]
    assert len(set(texts)) == len(texts)  # no prompt twice, none repeated from the first sets
    ids = [r["id"] for r in allrows]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"m[0-9a-f]{8}", r["id"]) for r in more)
    counted = [r for r in more if r["count"] is not None]
    assert all(r["category"] in P.PARALLEL_CATEGORIES for r in counted)
    assert {r["count"] for r in counted} == set(range(2, 8))
    forms = Counter(r["count_form"] for r in counted)
    assert forms["digits"] >= 300 and forms["words"] >= 300 and forms["enumerated"] and forms["compound"]
    for r in counted:
        if r["count_form"] == "digits":
            assert re.search(rf"\b{r['count']}\b", r["prompt"]), r
        if r["count_form"] in ("digits", "words"):
            assert asked_count(r["prompt"]) == r["count"], r  # bench's reading of the prompt agrees
    assert {r["count"] for r in counted if r["count_form"] == "digits"} == set(range(2, 8))
    assert {r["count"] for r in counted if r["count_form"] == "words"} == set(range(2, 8))
    # list-style prompts without a count, and serial prompts that look list-like
    assert sum(r["count"] is None for r in more if r["category"] in P.PARALLEL_CATEGORIES) >= 400
    assert sum(bool(r.get("looks_list")) for r in more) >= 80
    # many phrasings: distinct prompt shapes once the topic words are taken out
    assert len({r["prompt"].split()[0].lower() for r in more}) >= 40


def test_more_prompts_are_deterministic_and_prefix_stable(more):
    train, extra, _ = _first_sets()
    assert P.more_prompts(train + extra, 2000) == more
    assert P.more_prompts(train + extra, 500) == more[:500]
    assert P.more_prompts(train + extra, 300, seed=1) != more[:300]


def test_more_prompts_keep_the_evaluation_topics_out(more):
    _, evals = P.legacy_topics()
    for fam, pool in P.family_topics():
        cat = fam.topics if isinstance(fam.topics, str) else fam.category
        for t in pool:
            assert not any(P._contains_topic(t, e) for e in evals.get(cat, ())), (fam.category, t)
    _, eval_pool = P._pools(0)
    assert not {r["prompt"] for r in more} & {p for ps in eval_pool.values() for p in ps}
    # as the first sets' test probes it: no evaluation topic of a category in that category's prompts
    for fam in P.FAMILIES:
        _, ev = P.legacy_topics()
        for topic in ev[fam.category]:
            probe = [str(x) for x in topic] if isinstance(topic, tuple) else [topic]
            hits = [r["prompt"] for r in more if r["category"] == fam.category
                    and all(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", r["prompt"]) for w in probe)]
            assert not hits, (fam.category, topic, hits[:3])


def test_the_independent_set_is_kept_out(more):
    ind = IndependentSet(["Could you name five rivers in Africa?", "What is the capital of Peru?"])
    rows = [{"prompt": "Could you name five rivers in Africa?"},  # identical
            {"prompt": "Could you name five rivers in Africa, please?"},  # Jaccard 7/8
            {"prompt": "could you name 5 rivers in africa"},  # Jaccard 6/8
            {"prompt": "Name five rivers."},  # far
            {"prompt": "What is the capital of Chile?"}]  # Jaccard 5/7 = 0.71
    kept, dropped = ind.split(rows)
    assert [r["prompt"] for r in dropped] == [rows[0]["prompt"], rows[1]["prompt"]]
    assert ind.closest("What is the capital of Peru") == 1.0 and ind.too_close("what is the capital of peru?")
    assert not IndependentSet([]).too_close("anything")
    if paths.INDEPENDENT.exists():  # the real set: what `data prompts` writes has nothing close to it
        real = IndependentSet.load()
        kept, dropped = real.split(more)
        assert len(kept) + len(dropped) == len(more) and len(dropped) < 20
        assert all(real.closest(r["prompt"]) < 0.8 for r in kept)
