"""Stopping ``python -m aspd_local serve`` while it answers (a real server process and model, no mocks):
on SIGTERM or Ctrl-C the running streams end with a final chunk (``finish_reason`` "cancelled" and a
note in ``aspd.error``) and ``data: [DONE]``, a whole response in flight still comes back as JSON,
requests that arrive meanwhile get a 503, the process exits with status 0 within seconds and prints one
line per request it cut and its stop line -- no traceback. A second Ctrl-C exits at once."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTE = "the server is shutting down"
CUT = re.compile(r"^\[serve\] stopping: request (\S+) cut after (\d+) tokens$")
# a long answer (still streaming when the signal comes); the context holds three of them at once
ASK = {"model": "default", "messages": [{"role": "user", "content": "Count from 1 to 500, one number per line."}],
       "max_tokens": 400, "temperature": 0}


class Server:
    """``serve`` as a subprocess on a free port; its stderr after the "serving" line is collected."""

    def __init__(self, model: str, cache: str):
        env = dict(os.environ, ASPD_LOCAL_CACHE=cache)
        self.proc = subprocess.Popen([sys.executable, "-m", "aspd_local", "serve", model, "--port", "0",
                                      "--threads", "1", "--n-ctx", "2048", "--speculate", "none"],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT,
                                     env=env)
        line = ""
        while "serving" not in line:
            line = self.proc.stderr.readline()
            if not line:
                self.proc.kill()
                raise AssertionError("the server exited before it was ready")
        self.url = re.search(r"(http://\S+)/v1", line).group(1)
        self.port = int(self.url.rsplit(":", 1)[1])
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 30
        while True:  # (the line comes just before uvicorn listens)
            try:
                httpx.get(self.url + "/health", timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the server does not answer"
                time.sleep(0.05)

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def signal(self, sig=signal.SIGTERM) -> float:
        self.proc.send_signal(sig)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def wait_stopping(self, timeout: float = 5.0) -> httpx.Response:
        """GET /health on a new connection until it says the server is stopping."""
        deadline = time.monotonic() + timeout
        while True:
            r = httpx.get(self.url + "/health", timeout=5)
            if r.status_code == 503 or time.monotonic() > deadline:
                return r
            time.sleep(0.02)


@pytest.fixture
def server(q4_path, tmp_path):
    s = Server(q4_path, str(tmp_path))
    yield s
    s.kill()


class Stream(threading.Thread):
    """One streamed chat request: its SSE lines, and ``started`` once it has a few content deltas."""

    def __init__(self, url: str, min_deltas: int = 3):
        super().__init__(daemon=True)
        self.url, self.min_deltas = url, min_deltas
        self.lines: list[str] = []
        self.deltas = 0
        self.started = threading.Event()
        self.status = None
        self.error = None

    def run(self):
        try:
            with httpx.stream("POST", self.url + "/v1/chat/completions", json={**ASK, "stream": True},
                              timeout=60) as r:
                self.status = r.status_code
                for line in r.iter_lines():
                    if not line:
                        continue
                    self.lines.append(line)
                    if line.startswith("data: {"):
                        chunk = json.loads(line[6:])
                        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                            self.deltas += 1
                            if self.deltas >= self.min_deltas:
                                self.started.set()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.started.set()

    def chunks(self) -> list[dict]:
        return [json.loads(x[6:]) for x in self.lines if x.startswith("data: {")]


def _start_streams(server: Server, n: int) -> list[Stream]:
    streams = [Stream(server.url) for _ in range(n)]
    for s in streams:
        s.start()
    for s in streams:
        assert s.started.wait(60), "a stream sent no content"
        assert s.error is None and s.status == 200, (s.status, s.error)
        assert s.deltas >= s.min_deltas, "a stream ended before the signal: " + "\n".join(s.lines[-3:])
    return streams


def _check_cut_stream(s: Stream) -> str:
    """The stream ended with a final chunk carrying the finish reason and the note, then [DONE]; its id."""
    s.join(10)
    assert not s.is_alive(), "the stream did not end"
    assert s.error is None, s.error
    assert s.lines[-1] == "data: [DONE]"
    last = s.chunks()[-1]
    assert last["choices"][0]["finish_reason"] == "cancelled"
    assert last["aspd"]["type"] == "done" and last["aspd"]["finish_reason"] == "cancelled"
    assert last["aspd"]["error"] == NOTE
    assert all(c["choices"][0]["finish_reason"] is None for c in s.chunks()[:-1])
    return last["id"]


def _partial_request(server: Server) -> tuple[socket.socket, bytes]:
    """A POST whose body is only half sent: the request is in flight (the server waits for the rest)."""
    body = json.dumps({"model": "default", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
    return sock, body[10:]


def _read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        assert part, "the connection closed without a response"
        data += part
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(rest) < length:
        part = sock.recv(65536)
        assert part, "the connection closed in the middle of the response"
        rest += part
    return status, json.loads(rest[:length])


def _stderr_after_start(server: Server) -> tuple[list[str], list[tuple[str, int]]]:
    text = "\n".join(server.lines)
    assert "Traceback" not in text and "Exception" not in text, text
    cuts = [(m.group(1), int(m.group(2))) for m in map(CUT.match, server.lines) if m]
    others = [x for x in server.lines if not CUT.match(x)]
    return others, cuts


def test_sigterm_ends_running_requests_cleanly(server):
    """Two streams and one whole response in flight; SIGTERM: each ends properly, one line each, exit 0."""
    whole: dict = {}

    def ask_whole():
        try:
            r = httpx.post(server.url + "/v1/chat/completions", json=ASK, timeout=60)
            whole["status"], whole["body"] = r.status_code, r.json()
        except Exception as e:  # noqa: BLE001 - reported below
            whole["error"] = e

    t = threading.Thread(target=ask_whole, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while httpx.get(server.url + "/health", timeout=5).json()["idle"]:  # it is in the engine (ahead of the streams)
        assert time.monotonic() < deadline, "the request did not reach the engine"
        time.sleep(0.02)
    streams = _start_streams(server, 2)

    t0 = server.signal(signal.SIGTERM)
    ids = [_check_cut_stream(s) for s in streams]
    t.join(10)
    assert "error" not in whole, whole.get("error")
    assert whole["status"] == 200
    body = whole["body"]
    assert body["choices"][0]["finish_reason"] == "cancelled"
    assert body["aspd"]["finish_reason"] == "cancelled" and body["aspd"]["error"] == NOTE
    assert body["choices"][0]["message"]["content"] and body["usage"]["completion_tokens"] > 0

    rc = server.wait(10)
    assert time.monotonic() - t0 < 10
    assert rc == 0
    others, cuts = _stderr_after_start(server)
    assert sorted(i for i, _ in cuts) == sorted(ids + [body["id"]])  # one line per request cut
    assert dict(cuts)[body["id"]] == body["usage"]["completion_tokens"]
    assert all(n > 0 for _, n in cuts)
    assert others == ["server stopped"], server.lines


def test_requests_after_the_signal_get_503(server):
    """A request whose body was still coming in when SIGTERM came, and new ones meanwhile: 503, clear
    message; the stream running meanwhile still ends with its final chunk; then the server exits 0."""
    sock, rest = _partial_request(server)
    try:
        (stream,) = _start_streams(server, 1)  # (by now the half-sent request is in the app too)
        server.signal(signal.SIGTERM)
        health = server.wait_stopping()
        assert health.status_code == 503 and health.json()["status"] == "stopping"
        r = httpx.post(server.url + "/v1/chat/completions", json=ASK, timeout=10)
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["code"] == "server_shutting_down" and NOTE in err["message"]
        stream_id = _check_cut_stream(stream)

        sock.sendall(rest)
        status, body = _read_response(sock)
        assert status == 503 and body["error"]["code"] == "server_shutting_down"
    finally:
        sock.close()
    assert server.wait(10) == 0
    others, cuts = _stderr_after_start(server)
    assert [i for i, _ in cuts] == [stream_id]
    assert others == ["server stopped"], server.lines


def test_second_ctrl_c_exits_at_once(server):
    """Ctrl-C while a request holds the stop open (its body never completes); a second Ctrl-C: out at once."""
    sock, _ = _partial_request(server)
    try:
        (stream,) = _start_streams(server, 1)
        server.signal(signal.SIGINT)
        assert server.wait_stopping().status_code == 503
        _check_cut_stream(stream)
        time.sleep(0.3)
        assert server.proc.poll() is None  # still waiting for the half-sent request
        t0 = server.signal(signal.SIGINT)
        rc = server.wait(5)
        assert time.monotonic() - t0 < 3
    finally:
        sock.close()
    assert rc == 128 + signal.SIGINT
    others, cuts = _stderr_after_start(server)
    assert len(cuts) == 1
    assert others == ["server stopped at once (second signal)"], server.lines
