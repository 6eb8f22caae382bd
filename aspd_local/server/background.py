"""Running the app with uvicorn: in the foreground (the ``serve`` command) or in a background thread
(a Python program or a test that wants a server on loopback).

Stopping, in this order (uvicorn alone would keep streaming for its graceful timeout, then cancel the
requests' tasks and print a traceback for each): the app stops taking requests (503) and cancels every
request in the engine, each request sends its final event, then uvicorn closes the listener and the
connections. In the foreground the first Ctrl-C or SIGTERM does that; a second one exits at once."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable

import uvicorn

from ..errors import AspdLocalError


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound socket (port 0: any free port), or one clear error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise AspdLocalError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise AspdLocalError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return sock


GRACE_S = 5.0  # how long a stopping server waits for its requests' final events (they take one engine step)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn's server, stopping the app's requests before it closes their connections."""

    def __init__(self, config: uvicorn.Config, on_force: Callable[[int], None] | None = None):
        super().__init__(config)
        self.on_force = on_force

    async def shutdown(self, sockets=None) -> None:
        life = getattr(getattr(self.config.app, "state", None), "lifecycle", None)
        if life is not None and not self.force_exit:
            life.stop()  # new requests get 503 (the listener stays open meanwhile); running ones end
            await life.drain(GRACE_S, give_up=lambda: self.force_exit)
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self):
        # as uvicorn's, but without raising the signal again once stopped: a stop asked for is a clean exit
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig, frame) -> None:
        if not self.should_exit:
            self.should_exit = True  # the main loop sees it within 0.1 s and calls shutdown()
            return
        self.force_exit = True  # a second signal
        if self.on_force is not None:
            self.on_force(sig)


def _server(app, log_level: str, on_force: Callable[[int], None] | None = None) -> _Server:
    return _Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=2), on_force)


def serve(app, sock: socket.socket, log_level: str = "warning", stopped_at_once: str | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop cleanly (see the module's doc). A second signal ends the
    process at once (exit status 128 + the signal), after writing ``stopped_at_once`` to stderr."""

    def force(sig: int) -> None:
        try:  # (no print: this runs in a signal handler, maybe in the middle of another write)
            if stopped_at_once:
                os.write(2, (stopped_at_once + "\n").encode())
        finally:
            os._exit(128 + sig)

    _server(app, log_level, force).run(sockets=[sock])


class BackgroundServer:
    """``with BackgroundServer(app) as s: ... s.url ...`` -- uvicorn in a thread on ``host:port``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        self.sock = listen_socket(host, port)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server = _server(app, log_level)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]},
                                        name="aspd-server", daemon=True)

    def start(self, timeout: float = 30.0) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise AspdLocalError(f"the server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
