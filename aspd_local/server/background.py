"""Running the app with uvicorn: in the foreground (the ``serve`` command) or in a background thread
(a Python program or a test that wants a server on loopback)."""

from __future__ import annotations

import socket
import threading
import time

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


def _server(app, log_level: str) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5))


def serve(app, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve until interrupted (Ctrl-C)."""
    _server(app, log_level).run(sockets=[sock])


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
