"""Nothing slow on the decode thread: the cost curve is read or measured when the engine loads (cached on
disk per model, threads, GPU layers and machine, measured again when stale), and the global suffix index
is written by a background saver that coalesces requests."""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import numpy as np

from conftest import make_engine

from aspd_local.decoding.costcurve import (CACHE_MAX_AGE_S, DRAFT_SIZES, curve_cache_file, curve_cache_key,
                                           load_or_measure, read_cached_curve)
from aspd_local.suffix.cache import load_index, save_snapshot, snapshot_index
from aspd_local.suffix.index import TokenIndex
from aspd_local.suffix.saver import IndexSaver

KEY_FIELDS = {"model", "model_size", "model_mtime", "n_threads", "n_gpu_layers", "node", "machine", "cpu_count",
              "llama_cpp"}


def _curve_file(engine, root) -> tuple[str, dict]:
    key = curve_cache_key(engine.model.path, engine.ctx.n_threads, engine.model.n_gpu_layers)
    return curve_cache_file(os.path.join(root, "costcurve"), key), key


def _rewrite(path, **changes) -> None:
    with open(path) as fh:
        data = json.load(fh)
    for k, v in changes.items():
        if k == "key":
            data["key"] = {**data["key"], **v}
        else:
            data[k] = v
    with open(path, "w") as fh:
        json.dump(data, fh)


def test_cost_curve_is_measured_at_load_and_cached(f16_path, tmp_path, monkeypatch):
    monkeypatch.setenv("ASPD_LOCAL_CACHE", str(tmp_path))
    t0 = time.perf_counter()
    e = make_engine(f16_path, speculate="suffix", n_threads=1)
    try:
        load_s = time.perf_counter() - t0
        measured = e.ctx.decode_calls
        assert measured > 0  # the curve was measured while the engine loaded
        curve = e.cost_curve()
        assert e.ctx.decode_calls == measured  # and is not measured again
        assert sorted(curve) == list(DRAFT_SIZES) and all(v > 0 for v in curve.values())
        path, key = _curve_file(e, tmp_path)
        with open(path) as fh:
            data = json.load(fh)
        assert set(data["key"]) == KEY_FIELDS and data["key"] == key
        assert data["key"]["model"] == os.path.basename(f16_path) and data["key"]["n_threads"] == 1
        assert data["key"]["model_size"] == os.path.getsize(f16_path)
        assert abs(time.time() - data["measured_at"]) < load_s + 60
        assert {int(k): v for k, v in data["curve"].items()} == curve
        # the engine still answers, speculating with the curve it loaded
        r = e.generate("Count from 1 to 10.", mode="ar", max_tokens=8, keep=False)
        assert r.tokens
    finally:
        e.close()

    # a second engine on the same model reads the file: no decode at load
    e = make_engine(f16_path, speculate="suffix", n_threads=1)
    try:
        assert e.ctx.decode_calls == 0
        assert e.cost_curve() == curve

        def remeasured() -> bool:
            before = e.ctx.decode_calls
            got = e.scheduler.call(lambda: load_or_measure(e.ctx, e.cache, path, key))
            assert sorted(got) == list(DRAFT_SIZES)
            return e.ctx.decode_calls > before

        assert not remeasured()  # fresh and for this machine: read
        # written on another machine (a shared home directory): measured again, and the file replaced
        _rewrite(path, key={"node": "some-other-host"})
        assert read_cached_curve(path, key) is None
        assert remeasured()
        with open(path) as fh:
            assert json.load(fh)["key"] == key
        assert not remeasured()
        # older than the limit
        _rewrite(path, measured_at=time.time() - CACHE_MAX_AGE_S - 60)
        assert remeasured()
        with open(path) as fh:
            assert time.time() - json.load(fh)["measured_at"] < 600
        assert not remeasured()
        # (each measurement takes seconds: the other reasons to measure again are checked on the reader)
        with open(path) as fh:
            good = fh.read()

        def rejected(text: str) -> bool:
            with open(path, "w") as fh:
                fh.write(text)
            return read_cached_curve(path, key) is None

        data = json.loads(good)
        assert not rejected(good)
        assert rejected(json.dumps({**data, "key": {**key, "llama_cpp": "0.0.1"}}))  # another llama.cpp build
        assert rejected(json.dumps({**data, "key": {**key, "cpu_count": 999}}))
        assert rejected(json.dumps({**data, "key": {**key, "model_mtime": key["model_mtime"] + 1}}))
        assert rejected(json.dumps({**data, "measured_at": time.time() + 30 * 86400}))  # a clock far ahead
        assert rejected(good[:len(good) // 2])  # damaged
        assert rejected(json.dumps({str(k): v for k, v in curve.items()}))  # written before keys were stored
        assert rejected(json.dumps({**data, "curve": {"1": 5.0, "2": 50.0}}))  # implausible
        assert not read_cached_curve(path.replace(".json", "-missing.json"), key)
    finally:
        e.close()


def test_cost_curve_is_lazy_without_default_speculation(f16_path, tmp_path, monkeypatch):
    monkeypatch.setenv("ASPD_LOCAL_CACHE", str(tmp_path))
    e = make_engine(f16_path, n_threads=1)  # speculate="none": nothing measured at load
    try:
        assert e.ctx.decode_calls == 0
        path, _ = _curve_file(e, tmp_path)
        assert not os.path.exists(path)
        curve = e.cost_curve()  # through the scheduler's thread, between steps
        assert e.ctx.decode_calls > 0 and os.path.exists(path)
        assert sorted(curve) == list(DRAFT_SIZES)
        # a request that asks for speculation uses it
        r = e.generate("Count from 1 to 10.", mode="ar", max_tokens=8, keep=False, speculate="suffix")
        assert r.tokens
    finally:
        e.close()


def _answers(n: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 1000, size=int(rng.integers(1, 40))).tolist() for _ in range(n)]


def test_saver_coalesces_requests_and_close_flushes(tmp_path):
    path = str(tmp_path / "suffix" / "m.npz")
    calls: list[int] = []
    started, release = threading.Event(), threading.Event()

    def slow_save(snap, p, *, model_key=""):
        calls.append(snap.n_sequences)
        if len(calls) == 1:
            started.set()
            assert release.wait(30)
        save_snapshot(snap, p, model_key=model_key)

    saver = IndexSaver(path, "m", save=slow_save)
    index = TokenIndex()
    answers = _answers(51)
    index.add_sequence(answers[0])
    saver.request_save(index)
    assert started.wait(30)
    for a in answers[1:]:  # 50 requests while the first save runs
        index.add_sequence(a)
        saver.request_save(index)
    assert saver.pending
    release.set()
    saver.close()
    assert not saver.pending
    assert saver.requests == 51
    assert len(calls) <= 2 and calls[0] == 1 and calls[-1] == 51  # the latest state, written once
    loaded = load_index(path, model_key="m")
    assert [s.tolist() for s in loaded.sequences()] == answers
    # after close a request is written at once, on the caller's thread
    index.add_sequence([7, 8, 9])
    saver.request_save(index)
    assert load_index(path, model_key="m").n_sequences == 52


def test_snapshot_is_a_copy(tmp_path):
    index = TokenIndex.from_sequences(_answers(5))
    snap = snapshot_index(index)
    kept = [s.tolist() for s in index.sequences()]
    index.add_sequence([1, 2, 3])
    index.evict(max_sequences=2)  # the index rebuilds its arrays; the snapshot does not change
    save_snapshot(snap, str(tmp_path / "s.npz"), model_key="k")
    assert [s.tolist() for s in load_index(str(tmp_path / "s.npz"), model_key="k").sequences()] == kept
    # an open (still growing) last sequence is saved as far as it goes
    index.open_sequence([4, 5])
    save_snapshot(snapshot_index(index), str(tmp_path / "o.npz"), model_key="k")
    assert [s.tolist() for s in load_index(str(tmp_path / "o.npz"), model_key="k").sequences()][-1] == [4, 5]


def test_saver_warns_on_os_error(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    saver = IndexSaver(str(blocker / "suffix" / "m.npz"), "m")
    with caplog.at_level(logging.WARNING, logger="aspd_local"):
        saver.request_save(TokenIndex.from_sequences([[1, 2, 3]]))
        assert saver.flush(30)
        saver.request_save(TokenIndex.from_sequences([[1, 2, 3, 4]]))  # the thread goes on after a failure
        saver.close()
    assert saver.saves == 2
    assert sum("could not save the suffix cache" in r.getMessage() for r in caplog.records) == 2


def test_engine_saves_every_answer_in_the_background(f16_path, tmp_path, monkeypatch):
    monkeypatch.setenv("ASPD_LOCAL_CACHE", str(tmp_path))
    e = make_engine(f16_path, speculate="suffix", suffix_budget="all", suffix_cache=True, n_threads=1)
    try:
        path, key = e._spec.index_path(), e._spec.model_key()
        answers = [e.generate(f"Count from {i} to {i + 9}.", mode="ar", max_tokens=12, keep=False).tokens
                   for i in range(3)]
        assert e._spec.saver is not None and e._spec.saver.requests == 3
    finally:
        e.close()  # flushes the saver before the context goes
    assert not e._spec.saver.pending
    loaded = load_index(path, model_key=key, n_vocab=None)
    assert [s.tolist() for s in loaded.sequences()] == answers
