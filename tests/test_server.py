"""The OpenAI-compatible server on loopback, driven by the official ``openai`` client: answers equal the
engine's for the same greedy request (streamed or not), branch events ride along in the ``aspd`` field,
requests queue on the one engine, a client that disconnects frees it, bad requests get 400s."""

import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest

from aspd_local.bench.script import FREE, Script, block_script
from aspd_local.events import BlockEnd, BranchDelta, SerialDelta
from aspd_local.server import BackgroundServer, create_app
from aspd_local.server.content import ContentStream
from conftest import make_engine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUESTION = "What is the capital of France?"
OTHER = "Name a large animal."
N = 24


@pytest.fixture(scope="module")
def engine(f16_path):
    e = make_engine(f16_path, n_threads=1)
    yield e
    e.close()


@pytest.fixture(scope="module")
def server(engine):
    with BackgroundServer(create_app(engine)) as s:
        yield s


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def client(server):
    return _client(server)


@pytest.fixture(scope="module")
def model_id(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["gemma-3-270m-f16"]  # the GGUF file's stem
    return ids[0]


def _chat(question):
    return [{"role": "user", "content": question}]


def _stream_chunks(client, model_id, **kw):
    return list(client.chat.completions.create(model=model_id, stream=True, **kw))


def _aspd(chunk):
    return (chunk.model_extra or {}).get("aspd")


def _wait_idle(app, timeout=60.0):
    deadline = time.monotonic() + timeout
    while app.state.engine.scheduler.busy:
        assert time.monotonic() < deadline, "the engine did not become idle"
        time.sleep(0.05)


def test_answers_equal_the_engine(engine, client, model_id):
    ref = engine.generate(_chat(QUESTION), max_tokens=N, keep=False)
    n_prompt = len(engine.prompt_tokens(_chat(QUESTION)))

    r = client.chat.completions.create(model=model_id, messages=_chat(QUESTION), max_tokens=N, temperature=0)
    assert r.choices[0].message.content == ref.text
    assert r.choices[0].finish_reason == ("length" if ref.finish_reason == "length" else "stop")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (n_prompt, len(ref.tokens))
    assert r.usage.total_tokens == n_prompt + len(ref.tokens)

    chunks = _stream_chunks(client, model_id, messages=_chat(QUESTION), max_completion_tokens=N, temperature=0,
                            stream_options={"include_usage": True})
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ref.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == r.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(ref.tokens)
    assert chunks[-1].usage.prompt_tokens == n_prompt
    assert all(c.usage is None for c in chunks[:-1])
    assert engine.check_cache() == []


def test_text_completion_with_stop(engine, client, model_id):
    prompt = "The three primary colours are"
    ref = engine.generate(prompt, chat=False, max_tokens=N, keep=False)
    words = ref.text.split()
    assert len(words) > 3
    stop = " " + words[2]
    want = ref.text[:ref.text.index(stop)]

    plain = client.completions.create(model=model_id, prompt=prompt, max_tokens=N, temperature=0)
    assert plain.choices[0].text == ref.text and plain.usage.completion_tokens == len(ref.tokens)
    r = client.completions.create(model=model_id, prompt=prompt, max_tokens=N, temperature=0, stop=[stop, "\x00"])
    assert r.choices[0].text == want and r.choices[0].finish_reason == "stop"
    chunks = list(client.completions.create(model=model_id, prompt=prompt, max_tokens=N, temperature=0,
                                            stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == want
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert engine.check_cache() == []


def test_stop_strings_across_deltas():
    """Content cut at the first stop string wherever the deltas split it (reference: ``str.find``)."""
    rng = random.Random(0)
    text = "one, two; three. four: five, six. seven"
    for stops in (["."], ["; th", ":"], ["six.", "two;"], ["nowhere"], ["seven"], ["o"]):
        hits = [i for s in stops if (i := text.find(s)) >= 0]
        want = text[:min(hits)] if hits else text
        for _ in range(30):
            cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 12)))
            parts = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
            c = ContentStream(stops)
            evs = [SerialDelta(p) for p in parts[:-2]] + [BranchDelta(0, 0, parts[-2])] if len(parts) > 1 else []
            evs += [BlockEnd(0, [parts[-2] if len(parts) > 1 else "", parts[-1]])]
            pieces = [p for ev in evs for p in c.feed(ev)] + c.finish()
            assert "".join(p.content for p in pieces) == want == c.text
            assert c.stopped == bool(hits)


def test_block_events_in_the_stream(engine, model_id):
    serial, branches = block_script(engine, ["Red", "Blue"], [8, 6])
    serial += [FREE] * 4 + [engine.model.eos]
    script = lambda: [Script(serial, branches)]  # noqa: E731
    ref = engine.generate(_chat("Two colours?"), processors=script(), max_tokens=48, keep=False)
    assert [b.titles for b in ref.blocks] == [["Red", "Blue"]]

    app = create_app(engine, processors=script)
    with BackgroundServer(app) as s:
        c = _client(s)
        whole = c.chat.completions.create(model=model_id, messages=_chat("Two colours?"), max_tokens=48)
        chunks = _stream_chunks(c, model_id, messages=_chat("Two colours?"), max_tokens=48)
    assert whole.choices[0].message.content == ref.text
    content = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert content == ref.text  # a plain client gets the whole rendered answer

    events = [_aspd(ch) for ch in chunks if _aspd(ch) is not None]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "block_start" and events[0]["titles"] == ["Red", "Blue"]
    assert kinds.count("branch_end") == 2 and kinds.index("block_end") > kinds.index("branch_delta")
    assert kinds[-1] == "done"
    streamed = ["", ""]
    for e in events:
        if e["type"] == "branch_delta":
            streamed[e["branch"]] += e["text"]
    assert streamed == ref.blocks[0].texts and all(streamed)
    assert events[-1]["blocks"][0]["texts"] == ref.blocks[0].texts
    assert events[-1]["stats"]["branches"] == 2
    # the first branch's text is content as it is decoded; the others reach the content when the block joins
    at_join = next(i for i, ch in enumerate(chunks) if (_aspd(ch) or {}).get("type") == "block_end")
    before = "".join(ch.choices[0].delta.content or "" for ch in chunks[:at_join])
    assert before.endswith(ref.blocks[0].texts[0])
    assert chunks[at_join].choices[0].delta.content == ref.blocks[0].texts[1]
    assert (whole.model_extra["aspd"]["blocks"][0]["titles"]) == ["Red", "Blue"]


def test_two_concurrent_clients(engine, client, model_id):
    refs = {q: engine.generate(_chat(q), max_tokens=N, keep=False).text for q in (QUESTION, OTHER)}
    got, errors = {}, []
    barrier = threading.Barrier(2)

    def ask(q, stream):
        try:
            barrier.wait()
            if stream:
                got[q] = "".join(c.choices[0].delta.content or ""
                                 for c in _stream_chunks(client, model_id, messages=_chat(q), max_tokens=N))
            else:
                r = client.chat.completions.create(model=model_id, messages=_chat(q), max_tokens=N)
                got[q] = r.choices[0].message.content
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=ask, args=(QUESTION, True)), threading.Thread(target=ask, args=(OTHER, False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == [] and got == refs
    assert engine.check_cache() == []


def test_disconnect_frees_the_engine(engine, client, model_id):
    serial, branches = block_script(engine, ["North", "South"], [None, None])  # branches never close
    app = create_app(engine, processors=lambda: [Script(serial, branches)])
    prompt = engine.prompt_tokens(_chat("Describe north and south."))
    with BackgroundServer(app) as s:
        stream = _client(s).chat.completions.create(model=model_id, messages=_chat("Describe north and south."),
                                                    max_tokens=400, stream=True)
        for chunk in stream:
            if (_aspd(chunk) or {}).get("type") == "branch_delta":
                break
        stream.close()
        _wait_idle(app)
        assert engine.check_cache() == []
        # cancelled: its prompt stays cached for a retry, nothing of its answer does
        assert engine.cached_tokens()[0] == prompt

        # a non-streaming client that gives up (a generation of 1500 tokens takes far longer than 1 s)
        with pytest.raises(httpx.TimeoutException):
            httpx.post(s.url + "/v1/chat/completions", timeout=1.0,
                       json={"model": model_id, "messages": _chat("Describe north and south."), "max_tokens": 1500})
        _wait_idle(app)
        assert engine.check_cache() == [] and engine.cached_tokens()[0] == prompt
    ref = engine.generate(_chat(QUESTION), max_tokens=N, keep=False).text
    r = client.chat.completions.create(model=model_id, messages=_chat(QUESTION), max_tokens=N)
    assert r.choices[0].message.content == ref
    assert engine.check_cache() == []


def test_bad_requests_get_400(server, client, model_id):
    url = server.url + "/v1/chat/completions"
    r = httpx.post(url, content=b'{"model": "x", "messages": [', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="no-such-model", messages=_chat("hi"), max_tokens=4)
    assert e.value.status_code == 400 and "no-such-model" in e.value.body["message"]
    assert e.value.code == "model_not_found"

    for body, param in [({"messages": _chat("hi")}, "model"),
                        ({"model": model_id}, "messages"),
                        ({"model": model_id, "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
                        ({"model": model_id, "messages": _chat("hi"), "temperature": -1}, "temperature"),
                        ({"model": model_id, "messages": _chat("hi"), "max_tokens": 0}, "max_tokens"),
                        ({"model": model_id, "messages": _chat("hi"), "n": 2}, "n"),
                        ({"model": model_id, "messages": _chat("hi"), "aspd_mode": "fast"}, "aspd_mode")]:
        r = httpx.post(url, json=body)
        assert r.status_code == 400, body
        err = r.json()["error"]
        assert err["param"] == param and err["message"] and err["type"] == "invalid_request_error"


def test_prompt_longer_than_the_context(engine, client, model_id):
    long_text = "word " * (engine.ctx.n_ctx + 10)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_id, messages=_chat(long_text), max_tokens=4)
    assert e.value.code == "context_length_exceeded" and str(engine.ctx.n_ctx) in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model_id, prompt=long_text, max_tokens=4, stream=True)
    assert e.value.code == "context_length_exceeded"


def test_serve_command(q4_path, tmp_path):
    env = dict(os.environ, ASPD_LOCAL_CACHE=str(tmp_path))
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = str(taken.getsockname()[1])
        p = subprocess.run([sys.executable, "-m", "aspd_local", "serve", q4_path, "--port", port],
                           capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    finally:
        taken.close()
    assert p.returncode == 2 and p.stderr.startswith("error: cannot listen on 127.0.0.1:")

    proc = subprocess.Popen([sys.executable, "-m", "aspd_local", "serve", q4_path, "--port", "0", "--threads", "1"],
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        line = ""
        while "serving" not in line:
            line = proc.stderr.readline()
            assert line, "the server exited before it was ready"
        url = re.search(r"(http://\S+/v1)", line).group(1)
        models = json.loads(httpx.get(url + "/models").text)
        assert [m["id"] for m in models["data"]] == ["gemma-3-270m-q4_k_m"]
    finally:
        proc.send_signal(2)  # Ctrl-C
        rc = proc.wait(60)
    assert rc == 0


def test_full_queue_is_503_and_the_running_request_is_unaffected(f16_path):
    """One slot, no queue: a second request while the first runs gets 503 with Retry-After; the first
    still ends with the answer it gets alone; the alias 'default' names the served model."""
    e = make_engine(f16_path, n_threads=1, n_slots=1, max_queue=0)
    try:
        ref = e.generate(_chat(QUESTION), max_tokens=N, keep=False).text
        with BackgroundServer(create_app(e)) as s:
            c = _client(s)
            stream = c.chat.completions.create(model="default", messages=_chat(QUESTION), max_tokens=N, stream=True)
            it = iter(stream)
            first = next(it)  # the role chunk: the request has its slot now
            r = httpx.post(s.url + "/v1/chat/completions", timeout=30,
                           json={"model": "default", "messages": _chat(OTHER), "max_tokens": 4})
            assert r.status_code == 503 and r.headers["retry-after"].isdigit()
            assert r.json()["error"]["code"] == "server_busy"
            text = "".join((ch.choices[0].delta.content or "") for ch in [first, *it] if ch.choices)
            assert text == ref
            health = httpx.get(s.url + "/health").json()
            assert health["slots"] == 1 and health["waiting"] == 0
        assert e.check_cache() == []
    finally:
        e.close()


def test_parallel_clients_get_their_own_answers(engine, server, client, model_id):
    """Four clients at once (the engine's four slots): each answer equals that request alone."""
    questions = [QUESTION, OTHER, "Name a colour.", "Say something about rivers."]
    refs = [engine.generate(_chat(q), max_tokens=N, keep=False).text for q in questions]
    out = [None] * len(questions)

    def ask(i):
        r = client.chat.completions.create(model=model_id, messages=_chat(questions[i]), max_tokens=N)
        out[i] = (r.choices[0].message.content, r.usage.completion_tokens)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o[0] for o in out] == refs
    assert all(o[1] > 0 for o in out)
    assert engine.check_cache() == []
