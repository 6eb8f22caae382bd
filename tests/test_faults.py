"""Faults are pinned to their request: an error while admitting, stepping, filling the batch for, or
releasing one request ends that request alone, with every sequence id and cell it held freed (even when
a release step fails); the requests beside it finish with the answers they get alone, and the KV mirror
matches llama.cpp afterwards (``check_cache``)."""

from __future__ import annotations

import pytest

from aspd_local.kv import KvCache, Lane
from aspd_local.request import Job
from conftest import make_engine

PROMPTS = ["Name three colours.", "Count from 1 to 20.", "Say hello in French."]


class Boom(Exception):
    pass


@pytest.fixture(scope="module")
def engine(f16_path):
    e = make_engine(f16_path, n_threads=1)
    yield e
    e.close()


def _alone(e, prompts, **kw):
    return [e.generate(p, mode="ar", max_tokens=16, keep=False, **kw).tokens for p in prompts]


def test_a_fault_while_admitting_fails_that_request_alone(engine):
    ref = _alone(engine, PROMPTS)

    def broken(lane, reused, cancelled):
        raise Boom("the step function could not start")

    hs = [engine.submit(p, mode="ar", max_tokens=16, keep=False) for p in PROMPTS[:2]]
    bad = engine.scheduler.submit(Job(engine.prompt_tokens("Anything."), 16, broken))
    hs.append(engine.submit(PROMPTS[2], mode="ar", max_tokens=16, keep=False))
    with pytest.raises(Boom):
        bad.result(timeout=60)
    assert [h.result(timeout=120).tokens for h in hs] == ref
    assert engine.check_cache() == []


def test_a_fault_while_copying_a_cached_prefix_fails_that_request_alone(engine, monkeypatch):
    engine.generate("Tell me about the sea.", mode="ar", max_tokens=4)  # a cached line to reuse
    real = KvCache.copy_prefix
    calls = []

    def copy_once_broken(self, *a):
        calls.append(a)
        if len(calls) == 1:
            raise Boom("copying the prefix failed")
        return real(self, *a)

    monkeypatch.setattr(KvCache, "copy_prefix", copy_once_broken)
    with pytest.raises(Boom):
        engine.generate("Tell me about the sea. And the sky?", mode="ar", max_tokens=4)
    assert engine.check_cache() == []
    monkeypatch.undo()
    assert engine.generate("Tell me about the sea. And the sky?", mode="ar", max_tokens=4).tokens


def test_a_fault_while_stepping_fails_that_request_alone(engine):
    ref = _alone(engine, PROMPTS)

    def explode(info, logits):
        if len(info.tokens) == 5:
            raise Boom("a logits processor failed")

    bad = engine.submit("Write a poem about rain.", mode="ar", max_tokens=32, keep=False, processors=[explode])
    hs = [engine.submit(p, mode="ar", max_tokens=16, keep=False) for p in PROMPTS]
    with pytest.raises(Boom):
        bad.result(timeout=60)
    assert [h.result(timeout=120).tokens for h in hs] == ref
    assert engine.check_cache() == []


def test_a_fault_while_filling_the_batch_fails_that_request_alone(f16_path, monkeypatch):
    e = make_engine(f16_path, n_threads=1, speculate="suffix", suffix_budget="all")
    try:
        text = "Copy exactly: one two three four five six seven eight nine ten one two three four five six"
        ref = e.generate(text, mode="ar", max_tokens=24, keep=False, speculate="none").tokens
        real = Lane.open_draft
        bad_home = []

        def broken_draft(self, n_paths, src):
            if not bad_home:
                bad_home.append(self.home)
            if self.home == bad_home[0]:
                raise Boom("no draft for this one")
            return real(self, n_paths, src)

        monkeypatch.setattr(Lane, "open_draft", broken_draft)
        bad = e.submit(text, mode="ar", max_tokens=24, keep=False)
        with pytest.raises(Boom):
            bad.result(timeout=120)
        assert bad_home, "no draft was tried: the test proves nothing"
        monkeypatch.undo()
        assert e.check_cache() == []
        assert e.generate(text, mode="ar", max_tokens=24, keep=False).tokens == ref
    finally:
        e.close()


def test_a_fault_while_releasing_still_frees_everything(engine, monkeypatch):
    real = KvCache.truncate
    hit = []

    def truncate_broken(self, seq, n):
        hit.append(seq)
        raise Boom("truncating failed")

    monkeypatch.setattr(KvCache, "truncate", truncate_broken)
    # keep=False keeps only the prompt: releasing truncates the home sequence, which fails here
    r = engine.generate("Describe a cat.", mode="ar", max_tokens=8, keep=False)
    assert r.finish_reason == "length" and hit
    monkeypatch.setattr(KvCache, "truncate", real)
    assert engine.check_cache() == []
    assert all(line.tokens != engine.prompt_tokens("Describe a cat.") + r.tokens
               for line in engine.cache.lines.values())


def test_a_fault_while_releasing_a_fork_still_frees_the_rest(engine, monkeypatch):
    """A release step that fails midway (llama.cpp refuses to drop one branch's cells) does not keep the
    request's other forks or its reservation."""
    from aspd_local.bench.script import Script, block_script

    serial, branches = block_script(engine, ["One", "Two", "Three"], [6, 6, 6], lead="")
    real = KvCache.release
    failed = []

    def release(self, seq):
        real(self, seq)
        if not failed and seq not in engine.scheduler._cached:
            failed.append(seq)
            raise Boom("release reported a failure after freeing")

    handle = engine.submit("Name three things.", mode="parallel", max_tokens=200, keep=False,
                           processors=[Script(serial + [engine.model.eos], branches)])
    r = handle.result(timeout=120)
    assert r.stats.blocks == 1
    monkeypatch.setattr(KvCache, "release", release)
    handle = engine.submit("Name three things.", mode="parallel", max_tokens=200, keep=False,
                           processors=[Script(serial + [engine.model.eos], branches)])
    try:
        handle.result(timeout=120)
    except Boom:
        pass
    monkeypatch.setattr(KvCache, "release", real)
    assert failed
    assert engine.check_cache() == []
    assert not engine.cache.lanes  # no reservation left behind
