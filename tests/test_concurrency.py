"""Many requests at once: the scheduler puts every request's tokens into one decode per step, and a
request's answer is the one it gets alone (greedy and seeded sampling, branches and drafts on, f16 model
as in the schedule tests); cancelling one request touches no other; a full queue refuses cleanly."""

import threading

import pytest

from aspd_local import BranchDelta, Done, GenerationParams, Queued, QueueFullError
from aspd_local.bench.script import FREE, Script, block_script
from conftest import make_engine
from test_schedules import StreamLogits

PROMPTS = ["Describe each of these briefly.", "What is the capital of France?",
           "Write a short note about rivers.", "Name a colour and say why you like it."]


def _requests(e):
    """Four different requests: two scripted blocks (parallel and sequential), plain text, a chat turn
    in ar mode; speculation on for two of them."""
    s1, b1 = block_script(e, ["Red", "Green", "Blue"], [9, 4, 13])
    s1 += [FREE] * 6 + [e.model.eos]
    s2, b2 = block_script(e, ["Pros", "Cons"], [7, 11])
    s2 += [FREE] * 3 + [e.model.eos]
    return [
        (PROMPTS[0], dict(mode="parallel", max_tokens=120, processors=[Script(s1, b1)], speculate="suffix")),
        (PROMPTS[1], dict(mode="parallel", max_tokens=40)),
        (PROMPTS[2], dict(mode="sequential", max_tokens=120, processors=[Script(s2, b2)])),
        (PROMPTS[3], dict(mode="ar", max_tokens=48, speculate="suffix")),
    ]


def _fresh(kw):
    """A request's keywords with fresh processors (a Script keeps per-stream positions)."""
    out = dict(kw)
    if "processors" in kw:
        out["processors"] = [p.fresh() if hasattr(p, "fresh") else p for p in kw["processors"]]
    return out


def _alone(e, reqs):
    out = []
    for prompt, kw in reqs:
        e.clear_cache()
        out.append(e.generate(prompt, **_fresh(kw)))
        assert e.check_cache() == []
    return out


def _together(e, reqs):
    e.clear_cache()
    handles = [e.submit(prompt, **_fresh(kw)) for prompt, kw in reqs]
    results = [h.result(timeout=600) for h in handles]
    assert e.check_cache() == []
    return results


@pytest.fixture(scope="module")
def engine(f16_path):
    e = make_engine(f16_path, n_slots=4)
    yield e
    e.close()


def test_batched_requests_equal_each_alone(engine):
    e = engine
    reqs = _requests(e)
    steps0 = e.scheduler.steps
    alone = _alone(e, reqs)
    steps_alone = e.scheduler.steps - steps0
    steps0 = e.scheduler.steps
    together = _together(e, reqs)
    steps_together = e.scheduler.steps - steps0
    for a, t in zip(alone, together):
        assert t.tokens == a.tokens
        assert t.text == a.text
        assert t.finish_reason == a.finish_reason
    assert together[0].stats.blocks == 1 and together[0].stats.branches == 3
    assert together[2].stats.blocks == 1
    # really batched: far fewer decodes than one request after another, with several requests per decode
    assert steps_together < 0.7 * steps_alone
    assert max(together[1].stats.batch_sizes) > max(alone[1].stats.batch_sizes)


def test_seeded_sampling_equal_alone_and_together(engine):
    e = engine
    s1, b1 = block_script(e, ["Alpha", "Beta", "Gamma"], [10, 6, 14])
    s1 += [FREE] * 5 + [e.model.eos]
    kw = dict(temperature=0.9, seed=1234, top_k=40, max_tokens=100)
    reqs = [(PROMPTS[0], dict(kw, mode="parallel", processors=[StreamLogits(), Script(s1, b1)])),
            (PROMPTS[1], dict(kw, mode="ar", processors=[StreamLogits()], seed=7)),
            (PROMPTS[2], dict(kw, mode="parallel", processors=[StreamLogits()], seed=8, max_tokens=30))]
    alone = _alone(e, reqs)
    together = _together(e, reqs)
    assert [t.tokens for t in together] == [a.tokens for a in alone]
    assert alone[0].stats.branches == 3


def test_cancel_one_leaves_the_others_intact(engine):
    e = engine
    reqs = _requests(e)
    alone = _alone(e, reqs)
    e.clear_cache()
    handles = [e.submit(prompt, **_fresh(kw)) for prompt, kw in reqs]
    seen = threading.Event()

    def watch():  # cancel the scripted block request in the middle of its branches
        for ev in handles[0]:
            if isinstance(ev, BranchDelta) and not seen.is_set():
                seen.set()
                handles[0].cancel()

    t = threading.Thread(target=watch)
    t.start()
    results = [h.result(timeout=600) for h in handles]
    t.join()
    assert seen.is_set() and results[0].finish_reason == "cancelled"
    for a, r in zip(alone[1:], results[1:]):
        assert r.tokens == a.tokens
    assert e.check_cache() == []
    # the cancelled request's prompt stays cached; its answer does not
    prompt0 = e.prompt_tokens(PROMPTS[0])
    assert any(line == prompt0 for line in e.cached_tokens())


def test_full_queue_refuses_and_others_finish(f16_path):
    e = make_engine(f16_path, n_slots=1, max_queue=1)
    try:
        first = e.submit(PROMPTS[1], max_tokens=24)
        second = e.submit(PROMPTS[2], max_tokens=8)
        with pytest.raises(QueueFullError, match="queue holds 1"):
            e.submit(PROMPTS[3], max_tokens=8)
        events = list(second)
        assert isinstance(events[0], Queued) and events[0].position == 0
        assert isinstance(events[-1], Done) and first.result().finish_reason in ("stop", "length")
        assert e.check_cache() == []
    finally:
        e.close()


def test_prompt_longer_than_the_context_is_refused_at_once(f16_path):
    e = make_engine(f16_path, n_ctx=256)
    try:
        from aspd_local import ContextOverflowError

        with pytest.raises(ContextOverflowError, match="context holds 256"):
            e.submit("word " * 400)
        assert e.generate(PROMPTS[1], max_tokens=4).tokens
    finally:
        e.close()


def test_params_are_one_dataclass():
    p = GenerationParams(max_tokens=7, stop="\n\n")
    assert p.stop == ("\n\n",) and p.caps().max_tokens == 7 and p.sampling().temperature == 0.0
    with pytest.raises(ValueError, match="temperature"):
        GenerationParams(temperature=-1)
    with pytest.raises(ValueError, match="mode must be one of"):
        GenerationParams(mode="fast")
    with pytest.raises(TypeError, match="unknown generation option"):
        GenerationParams.of(temprature=1)


def test_stop_strings_end_serial_text_and_branches(engine):
    e = engine
    free = e.generate(PROMPTS[1], max_tokens=40, mode="ar")
    cut = free.text[len(free.text) // 3:len(free.text) // 3 + 4]
    assert cut.strip(), free.text
    r = e.generate(PROMPTS[1], max_tokens=40, mode="ar", stop=[cut])
    assert r.text == free.text[:free.text.index(cut)] and r.finish_reason == "stop"
    assert len(r.tokens) < len(free.tokens)  # decoding stopped there
    streamed = "".join(ev.text for ev in e.stream(PROMPTS[1], max_tokens=40, mode="ar", stop=[cut])
                       if hasattr(ev, "text") and not hasattr(ev, "branch"))
    assert streamed == r.text  # the deltas end right before the stop string too
    # in a branch: that branch closes at the stop string, the others finish, the answer ends after the block
    s1, b1 = block_script(e, ["Red", "Green"], [30, 12])
    s1 += [FREE] * 10 + [e.model.eos]
    whole = e.generate(PROMPTS[0], max_tokens=200, processors=[Script(s1, b1)])
    branch0 = whole.blocks[0].texts[0]
    stop = branch0[len(branch0) // 2:len(branch0) // 2 + 5]
    assert whole.text.index(stop) >= whole.text.index(branch0), "the stop string must first appear in branch 0"
    r = e.generate(PROMPTS[0], max_tokens=200, processors=[Script(s1, b1)], stop=[stop])
    assert r.finish_reason == "stop" and r.blocks[0].texts[0] == branch0[:branch0.index(stop)]
    assert r.blocks[0].texts[1] == whole.blocks[0].texts[1]
    assert r.text == whole.text[:whole.text.index(stop)]
    assert e.check_cache() == []


def test_cancel_while_queued(f16_path):
    """A request cancelled while it waits leaves the queue at once and ends as cancelled, with nothing run."""
    e = make_engine(f16_path, n_slots=1)
    try:
        first = e.submit(PROMPTS[1], max_tokens=64, mode="ar")
        second = e.submit(PROMPTS[2], max_tokens=24)
        third = e.submit(PROMPTS[3], max_tokens=4)
        second.cancel()
        r = second.result(timeout=60)
        assert r.finish_reason == "cancelled" and r.tokens == [] and not first.done
        assert first.result().finish_reason in ("stop", "length") and third.result().tokens
        assert e.check_cache() == []
    finally:
        e.close()
