"""The prompt sets: deterministic, with a real serial share, and evaluation prompts on topics never used in
training."""

from __future__ import annotations

from collections import Counter

from aspd_local.data import prompts as P


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
    assert all(set(r) == {"id", "prompt", "category"} for r in evals)
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
