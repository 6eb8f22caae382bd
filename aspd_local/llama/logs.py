"""llama.cpp's log: silent unless asked for, errors kept for our messages."""

from __future__ import annotations

import collections
import ctypes
import sys

import llama_cpp

_GGML_LOG_LEVEL_ERROR = 4
_verbose = False
_recent_errors: collections.deque[str] = collections.deque(maxlen=20)


@llama_cpp.llama_log_callback
def _log_callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:  # pragma: no cover - C callback
    msg = text.decode("utf-8", errors="replace") if text else ""
    if level == _GGML_LOG_LEVEL_ERROR and msg.strip():
        _recent_errors.append(msg.strip())
    if _verbose:
        sys.stderr.write(msg)


def install() -> None:
    """Route llama.cpp's log through our callback (idempotent)."""
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def set_verbose(verbose: bool) -> None:
    """Show llama.cpp's own log on stderr (off by default)."""
    global _verbose
    _verbose = bool(verbose)
    install()


def take_errors() -> list[str]:
    """The error lines llama.cpp logged since the last call."""
    out = list(_recent_errors)
    _recent_errors.clear()
    return out
