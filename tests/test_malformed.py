"""Malformed structures from a model, and cancelled requests: each ends cleanly with a readable result,
and afterwards the KV cache holds exactly the conversation's tokens, so the next request is unaffected."""

import threading

import pytest

from aspd_local import BlockStart, BranchDelta, Caps, Done
from aspd_local.aspd.layout import render_tokens
from conftest import make_engine
from aspd_local.bench.script import FREE, Script, block_script

NEXT_PROMPT = "What is the capital of France?"


@pytest.fixture(scope="module")
def reference_next(f16_path):
    """The next request's answer on a fresh engine."""
    e = make_engine(f16_path)
    try:
        return e.generate(NEXT_PROMPT, max_tokens=16).tokens
    finally:
        e.close()


def _assert_clean(e, prompt_tokens, result, reference_next):
    assert e.check_cache() == []
    assert e.cached_tokens()[0] == prompt_tokens + result.tokens
    # the streamed rendering equals the layout renderer's reading of the token stream (docs/format.md section 4)
    assert result.text == render_tokens(result.tokens, e.aspd, e.model.piece)
    assert e.generate(NEXT_PROMPT, max_tokens=16, keep=False).tokens == reference_next
    assert e.check_cache() == []


def _run(e, serial, branches, caps, prompt="Give me some parts."):
    tokens = e.prompt_tokens(prompt)
    r = e.generate(tokens, processors=[Script(serial, branches)], caps=caps)
    return tokens, r


def test_title_never_closed(f16_engine, reference_next):
    e = f16_engine
    word = e.tokenize(" word")[0]
    serial = [e.aspd.title_open] + [word] * 200
    p, r = _run(e, serial, {}, Caps(max_tokens=150, max_title_tokens=5, max_titles=3, max_branch_tokens=6))
    assert r.blocks, "the capped title still opens a block"
    assert all(len(e.tokenize(t)) <= 5 for t in r.blocks[0].titles)
    _assert_clean(e, p, r, reference_next)


def test_too_many_titles(f16_engine, reference_next):
    e = f16_engine
    serial, branches = block_script(e, [f"Part {i}" for i in range(12)], [3] * 12)
    serial += [e.model.eos]
    p, r = _run(e, serial, branches, Caps(max_tokens=300, max_titles=4))
    assert len(r.blocks[0].titles) == 4
    assert r.blocks[0].titles == [f"Part {i}" for i in range(4)]
    _assert_clean(e, p, r, reference_next)


def test_para_without_title_is_refused(f16_engine, reference_next):
    e = f16_engine
    serial = [e.aspd.para_open, e.aspd.para_open, FREE, FREE, e.model.eos]
    p, r = _run(e, serial, {}, Caps(max_tokens=20))
    assert r.blocks == [] and e.aspd.para_open not in r.tokens
    _assert_clean(e, p, r, reference_next)


def test_branch_that_never_closes(f16_engine, reference_next):
    e = f16_engine
    word = e.tokenize(" again")[0]
    serial, _ = block_script(e, ["Loop", "Fine"], [])
    serial += [e.model.eos]
    branches = {(0, 0): [word] * 500, (0, 1): [FREE] * 3 + [e.aspd.branch_close]}
    events = list(e.stream(e.prompt_tokens("Loop forever."), processors=[Script(serial, branches)],
                           caps=Caps(max_tokens=200, max_branch_tokens=10)))
    r = events[-1].result
    ends = {ev.branch: ev.reason for ev in events if type(ev).__name__ == "BranchEnd"}
    assert ends == {0: "cap", 1: "closed"}
    assert r.blocks[0].token_counts[0] == 1 + len(e.tokenize("Loop: ")) + 10 + 1
    # the branch cut by its cap still ends its line, and (a paragraph, not a list item, before a sibling)
    # with a blank line: the joined block reads as two paragraphs
    cut = r.blocks[0].texts[0]
    assert cut.endswith("\n\n") and cut.count("\n") == 2 and cut.rstrip("\n").endswith("again")
    assert cut + r.blocks[0].texts[1] in r.text
    _assert_clean(e, e.prompt_tokens("Loop forever."), r, reference_next)


def test_eos_inside_a_branch_closes_it(f16_engine, reference_next):
    e = f16_engine
    serial, _ = block_script(e, ["One", "Two"], [])
    serial += [FREE, e.model.eos]
    branches = {(0, 0): [FREE, FREE, e.model.eos], (0, 1): [FREE] * 4 + [e.aspd.branch_close]}
    tokens = e.prompt_tokens("Two things.")
    events = list(e.stream(tokens, processors=[Script(serial, branches)], max_tokens=100))
    ends = {ev.branch: ev.reason for ev in events if type(ev).__name__ == "BranchEnd"}
    assert ends == {0: "eos", 1: "closed"}
    r = events[-1].result
    assert e.model.eos not in r.tokens[: r.tokens.index(e.aspd.para_close)]
    _assert_clean(e, tokens, r, reference_next)


def test_context_running_out_mid_block(f16_path, reference_next):
    e = make_engine(f16_path, n_ctx=256)
    try:
        serial, branches = block_script(e, ["North", "South", "East", "West"], [None] * 4)
        serial += [FREE] * 500
        tokens = e.prompt_tokens("Describe the four directions in great detail.")
        r = e.generate(tokens, processors=[Script(serial, branches)], caps=Caps(max_tokens=1000))
        assert r.finish_reason == "context"
        assert r.blocks and len(r.blocks[0].texts) == 4
        assert e.aspd.para_close in r.tokens  # the block was still closed
        assert e.cache.used_cells <= 256
        _assert_clean(e, tokens, r, reference_next)
    finally:
        e.close()


def test_cancelled_stream_mid_block(f16_engine, reference_next):
    e = f16_engine
    serial, branches = block_script(e, ["Left", "Right"], [30, 30])
    handle = e.submit("Compare left and right.", processors=[Script(serial, branches)], max_tokens=200)
    stream = iter(handle)
    for ev in stream:
        if isinstance(ev, BranchDelta) and ev.branch == 1:
            break
    stream.close()  # the consumer goes away: that cancels the request
    assert handle.result().finish_reason == "cancelled"
    assert e.check_cache() == []
    # its prompt stays cached for a retry; nothing of the answer does
    assert e.cached_tokens()[0] == e.prompt_tokens("Compare left and right.")
    assert e.generate(NEXT_PROMPT, max_tokens=16, keep=False).tokens == reference_next


def test_cancel_call_returns_partial_result(f16_engine, reference_next):
    e = f16_engine
    serial, branches = block_script(e, ["Up", "Down", "Sideways"], [40, 40, 40])
    seen_block = False
    done = None
    for ev in e.stream("Directions?", processors=[Script(serial, branches)], max_tokens=300):
        if isinstance(ev, BlockStart):
            seen_block = True
        if isinstance(ev, BranchDelta) and ev.branch == 2:
            threading.Thread(target=e.cancel).start()
        if isinstance(ev, Done):
            done = ev.result
    assert seen_block and done.finish_reason == "cancelled"
    assert e.check_cache() == []
    assert e.generate(NEXT_PROMPT, max_tokens=16, keep=False).tokens == reference_next


def test_title_key_ignores_case_space_and_item_number():
    from aspd_local.aspd.grammar import title_key

    assert title_key("2. Rinse") == title_key("3. rinse ") == title_key("Rinse") == "rinse"
    assert title_key("(4) Tie  the knot") == "tie the knot"
    assert title_key("Apple") != title_key("Apples")
    assert title_key("2024 plans") == "2024 plans" and title_key("1.5 cups") == "1.5 cups"  # no item numbers


def test_repeated_title_ends_the_title_list(f16_engine, reference_next):
    """Spec section 2: titles are unique within a block. A title equal to an earlier one of its block (up to
    case and item number) is taken back when the model closes it, and the block opens with the titles
    before it; the token stream, the KV cache and the rendering stay consistent."""
    from aspd_local.aspd.grammar import title_key

    e = f16_engine
    a, tok = e.aspd, e.tokenize
    titles = ["1. Apples", "2. Pears", "3. apples"]
    serial = tok("Fruit:\n")
    for t in titles:
        serial += [a.title_open] + tok(t) + [a.title_close]
    serial += [a.title_open] + tok("4. Plums") + [a.title_close] + [e.model.eos] * 40
    p, r = _run(e, serial, {(0, 0): [FREE] * 4 + [a.branch_close], (0, 1): [FREE] * 4 + [a.branch_close]},
                Caps(max_tokens=120, max_titles=8, max_branch_tokens=6))
    assert r.blocks and r.blocks[0].titles == ["1. Apples", "2. Pears"]
    assert r.stats.repeated_titles == 1
    # the repeated title is not in the stream: the stream goes from the second title straight to <|para|>
    close2 = [i for i, t in enumerate(r.tokens) if t == a.title_close][1]
    assert r.tokens[close2 + 1] == a.para_open
    assert title_key("3. apples") == title_key(titles[0])
    _assert_clean(e, p, r, reference_next)
