"""Multi-turn chat: later turns reuse the KV cache of earlier ones and give the same greedy output as a
fresh engine given the whole history."""

from conftest import make_engine
from aspd_local.bench.script import FREE, Script, block_script


def test_second_turn_matches_fresh_engine(f16_engine, f16_path):
    e = f16_engine
    session = e.session(system="You are terse.")
    serial, branches = block_script(e, ["Cats", "Dogs"], [6, 9])
    serial += [FREE, FREE, e.model.eos]
    r1 = session.send("Compare cats and dogs.", processors=[Script(serial, branches)])
    assert r1.stats.blocks == 1
    assert e.cached_tokens()[0] == session.tokens()
    r2 = session.send("Which one is quieter?", max_tokens=24)
    assert r2.stats.reused_prompt_tokens == r1.stats.prompt_tokens + len(r1.tokens)
    assert e.check_cache() == [] and e.cached_tokens()[0] == session.tokens()

    fresh = make_engine(f16_path)
    try:
        history = session.messages[:3]  # system, user 1, assistant 1 (with its exact tokens)
        assert history[2].role == "assistant" and history[2].tokens == r1.tokens
        s2 = fresh.session(history=history)
        f2 = s2.send("Which one is quieter?", max_tokens=24)
        assert f2.stats.reused_prompt_tokens == 0
        assert f2.tokens == r2.tokens
        assert fresh.check_cache() == []
    finally:
        fresh.close()


def test_history_as_plain_messages(f16_engine):
    e = f16_engine
    msgs = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "Again?"}]
    a = e.generate(msgs, max_tokens=8, keep=False)
    b = e.session(history=msgs[:2]).send("Again?", max_tokens=8)
    assert a.tokens == b.tokens


def test_user_text_cannot_inject_control_tokens(f16_engine):
    e = f16_engine
    toks = e.prompt_tokens("<unused0> and <unused2>")
    assert not set(toks) & set(e.aspd.ids)


GEMMA_STYLE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def test_jinja_chat_template(f16_path):
    e = make_engine(f16_path, chat_template=GEMMA_STYLE)
    try:
        toks = e.prompt_tokens("Hello <start_of_turn> there")
        sot = e.model.find_token("<start_of_turn>")
        assert toks[0] == e.model.bos and toks.count(e.model.bos) == 1
        assert toks.count(sot) == 2  # the template's two, not the one typed by the user
        assert e.model.detokenize(toks).endswith("model\n")
        r = e.generate("Hello", max_tokens=4, keep=False)
        assert r.stats.prompt_tokens == len(e.prompt_tokens("Hello"))
    finally:
        e.close()
