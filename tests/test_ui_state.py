"""The page's state, without a browser: engine events -> branch panels that appear, fill and fold into
the answer; the statistics strip; the engine host's conversations and its per-user stop."""

import re
import threading

import pytest

from aspd_local import BlockEnd, BlockStart, BranchDelta, BranchEnd, Done
from aspd_local.bench.script import Script, block_script
from aspd_local.ui import AnswerView, Conversation, EngineHost
from aspd_local.ui.panels import branches_html, stats_html
from aspd_local.ui.stats import LiveStats, speedup_vs_ar
from conftest import make_engine

KW = dict(max_tokens=80, temperature=0.0)


@pytest.fixture(scope="module")
def engine(q4_path):
    e = make_engine(q4_path, n_threads=1)
    yield e
    e.close()


def _script(e, titles, lens):
    serial, branches = block_script(e, titles, lens)
    return [Script(serial + [e.model.eos], branches)]


def _panels(html):
    return re.findall(r'class="aspd-branch [^"]*" data-branch="(\d+)" data-title="([^"]*)" data-state="(\w+)">'
                      r'.*?<div class="aspd-branch-text">(.*?)</div>', html)


def test_branches_appear_fill_and_fold(engine):
    e = engine
    view, live = AnswerView(), LiveStats({1: 10.0, 2: 12.0, 4: 16.0}, lambda: e.ctx.decode_calls)
    seen_open = seen_filled = False
    serial_before_block = None
    for ev in e.stream("List two fruits and two vegetables.", processors=_script(e, ["Fruits", "Vegetables"], [8, 8]),
                       keep=False, **KW):
        view.apply(ev)
        live.apply(ev)
        html = branches_html(view)
        if isinstance(ev, BlockStart):
            serial_before_block = view.text
            panels = _panels(html)
            assert panels == [("0", "Fruits", "live", ""), ("1", "Vegetables", "live", "")]
            assert view.in_flight == 2 and live.snapshot().in_flight == 2
            seen_open = True
        elif isinstance(ev, BranchDelta):
            assert view.branches[ev.branch].text.endswith(ev.text)
            if all(b.text.strip() for b in view.branches):
                seen_filled = True
                assert all(x.strip() for *_, x in _panels(html))
        elif isinstance(ev, BranchEnd):
            assert view.branches[ev.branch].done and view.branches[ev.branch].text == ev.text
            assert 'data-state="done"' in html
        elif isinstance(ev, BlockEnd):
            # folded: no panels, the branches joined the answer in order
            assert view.branches == [] and _panels(html) == [] and 'data-open="0"' in html
            assert view.text == serial_before_block + "".join(ev.texts)
        elif isinstance(ev, Done):
            result = ev.result
    assert seen_open and seen_filled
    assert result.finish_reason == "stop" and len(result.blocks) == 1
    assert view.text == view.chat_text() == result.text
    snap = live.snapshot()
    assert snap.final and snap.tokens == result.stats.tokens and snap.tokens_per_call == result.stats.tokens_per_call
    assert snap.speedup == pytest.approx(speedup_vs_ar(live.curve, result.stats.tokens, result.stats.batch_sizes))
    assert snap.speedup > 1  # two branches per call, and two tokens cost less than two calls by this curve
    assert 'id="aspd-stat-speedup"' in stats_html(snap) and 'data-state="final"' in stats_html(snap)


def test_speedup_estimate():
    curve = {1: 10.0, 2: 12.0, 4: 16.0}
    assert speedup_vs_ar(curve, 5, {1: 5}) == pytest.approx(1.0)  # plain decoding: no speedup
    assert speedup_vs_ar(curve, 9, {1: 1, 4: 2}) == pytest.approx(90 / 42)
    assert speedup_vs_ar(None, 9, {1: 9}) is None and speedup_vs_ar(curve, 0, {}) is None


def test_stop_keeps_what_was_shown(engine):
    e = engine
    view = AnswerView()
    asked = False
    for ev in e.stream("Describe north and south.", processors=_script(e, ["North", "South"], [None, None]),
                       keep=False, **{**KW, "max_tokens": 400}):
        view.apply(ev)
        if isinstance(ev, BranchDelta) and len(view.branches[1].text) > 10 and not asked:
            e.cancel()
            asked = True
    assert view.stopped and view.result.finish_reason == "cancelled"
    assert view.chat_text().endswith("*[stopped]*") and "North" not in view.text  # titles are not answer text
    assert len(view.text) > len("Here are the parts:\n") + 10  # the partial branches stay in the answer
    assert branches_html(view).count("aspd-branch ") == 0
    assert e.check_cache() == []


def test_host_conversation_and_stop(engine):
    e = engine
    host = EngineHost(e, measure_cost=False)
    conv = Conversation()
    kw = dict(mode="parallel", speculate="none", **KW)
    first = [ev for ev in host.stream("a", conv, "List two colours.", processors=_script(e, ["Warm", "Cool"], [4, 4]),
                                      **kw)][-1].result
    assert [m.role for m in conv.messages] == ["user", "assistant"] and conv.messages[1].tokens == first.tokens

    # another user's stop does nothing; the answer's own user stops it, and the stopped turn is not kept
    stream = host.stream("a", conv, "Describe up and down.", processors=_script(e, ["Up", "Down"], [None, None]),
                         **{**kw, "max_tokens": 400})
    for ev in stream:
        if isinstance(ev, BranchDelta):
            assert host.stop("b") is False
            assert host.stop("a") is True
            break
    rest = list(stream)
    assert rest[-1].result.finish_reason == "cancelled" and len(conv.messages) == 2
    assert host.stop("a") is False  # nothing running

    # the next turn continues the kept conversation: the same answer as a chat session given that history
    second = [ev for ev in host.stream("a", conv, "Name a fruit.", processors=_script(e, ["Red", "Green"], [4, 4]),
                                       **kw)][-1].result
    ref = e.session(history=conv.messages[:2]).send("Name a fruit.", processors=_script(e, ["Red", "Green"], [4, 4]),
                                                    **kw)
    assert second.text == ref.text and len(conv.messages) == 4
    assert e.check_cache() == []


def test_stop_from_another_thread_is_per_user(engine):
    """The page's stop button runs outside the queue, on another thread: the answer ends at its next step."""
    e = engine
    host = EngineHost(e, measure_cost=False)
    conv = Conversation()
    stream = host.stream("a", conv, "Count to a hundred.", max_tokens=300, speculate="none")
    first = next(stream)
    t = threading.Thread(target=host.stop, args=("a",))
    t.start()
    t.join()
    events = [first, *stream]
    assert events[-1].result.finish_reason == "cancelled" and events[-1].result.stats.tokens < 300
    assert conv.messages == [] and e.check_cache() == []


def test_model_switch(q4_path, tmp_path):
    """The picker's switch: the new model serves from then on, the old engine is closed, a conversation
    made on the old one keeps its text (not its tokens), and a model that fails to load changes nothing."""
    other = tmp_path / "other.gguf"
    other.symlink_to(q4_path)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    host = EngineHost(lambda p: make_engine(p, n_threads=1), [q4_path, str(other)], measure_cost=False)
    try:
        assert host.model == q4_path and host.models == [q4_path, str(other)] and host.can_switch
        conv = Conversation()
        list(host.stream("a", conv, "Hi.", max_tokens=6, speculate="none"))
        assert conv.model == q4_path and conv.messages[1].tokens
        first = host.engine
        host.switch(str(other))
        assert host.model == str(other) and host.engine is not first and host.engine.model.path == str(other)
        list(host.stream("a", conv, "Bye.", max_tokens=6, speculate="none"))
        assert conv.model == str(other) and conv.messages[1].tokens is None and len(conv.messages) == 4
        from aspd_local import AspdLocalError

        with pytest.raises(AspdLocalError):
            host.switch(str(bad))
        assert host.model == str(other) and host.engine.check_cache() == []
    finally:
        host.close()


def test_known_models(tmp_path, monkeypatch):
    from aspd_local.ui.catalog import default_model_target, known_models

    monkeypatch.setenv("ASPD_LOCAL_CACHE", str(tmp_path))
    (tmp_path / "models").mkdir()
    for name in ("b.gguf", "a.gguf", "notes.txt"):
        (tmp_path / "models" / name).write_text("x")
    given = tmp_path / "mine.gguf"
    default = default_model_target()
    assert default.startswith(str(tmp_path / "models"))
    assert known_models([str(given)]) == [str(given), default, str(tmp_path / "models" / "a.gguf"),
                                          str(tmp_path / "models" / "b.gguf")]
    assert known_models([None])[0] == default  # no model given: the default first
