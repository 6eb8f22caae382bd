"""Writing the global index to disk off the decode thread.

The scheduler's thread changes the global index (an answer is added after every speculative request) and
must not wait for the disk. ``IndexSaver.request_save`` copies the index's arrays there (a memcpy, see
``cache.snapshot_index``) and hands the copy to one daemon thread, which writes it with
``cache.save_snapshot``. Requests coalesce: the writer keeps only the newest snapshot waiting, so any
number of requests during a save lead to at most one more save, of the latest state. ``close`` writes
what is still waiting and joins the thread (the engine calls it before it frees its context); savers
still open at interpreter exit are closed the same way.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable

from .cache import IndexSnapshot, save_snapshot, snapshot_index
from .index import TokenIndex

log = logging.getLogger("aspd_local")

_open_savers: "weakref.WeakSet[IndexSaver]" = weakref.WeakSet()


class IndexSaver:
    """Saves the latest snapshot of an index to ``path`` on a thread of its own (started on the first
    request). ``save`` is the function that writes a snapshot (``save_snapshot``; tests may slow it)."""

    def __init__(self, path: str, model_key: str = "", *,
                 save: Callable[..., None] = save_snapshot):
        self.path, self.model_key = path, model_key
        self._save = save
        self._cv = threading.Condition()
        self._pending: IndexSnapshot | None = None
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.saves = 0  # saves attempted (written, or failed with a warning)
        self.requests = 0

    def request_save(self, index: TokenIndex) -> None:
        """Snapshot ``index`` now (call this on the thread that changes it) and have it written soon. A
        snapshot still waiting is replaced by this newer one. After ``close``, the snapshot is written on
        this thread."""
        snap = snapshot_index(index)
        with self._cv:
            self.requests += 1
            if not self._closed:
                self._pending = snap
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="aspd-index-saver", daemon=True)
                    self._thread.start()
                    _open_savers.add(self)
                self._cv.notify_all()
                return
        self._write(snap)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every requested snapshot is written; False if ``timeout`` passed first."""
        with self._cv:
            return self._cv.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write the snapshot still waiting, then stop the thread. Safe to call twice."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        _open_savers.discard(self)

    @property
    def pending(self) -> bool:
        """A snapshot waits or is being written."""
        with self._cv:
            return self._pending is not None or self._busy

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._pending is not None or self._closed)
                if self._pending is None:  # closed, nothing left to write
                    return
                snap, self._pending = self._pending, None
                self._busy = True
            try:
                self._write(snap)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _write(self, snap: IndexSnapshot) -> None:
        try:
            self._save(snap, self.path, model_key=self.model_key)
        except OSError as e:
            log.warning("could not save the suffix cache: %s", e)
        except Exception:  # noqa: BLE001 - the writer keeps running; the next save replaces the file
            log.exception("could not save the suffix cache to %s", self.path)
        with self._cv:
            self.saves += 1


@atexit.register
def _close_open_savers() -> None:
    """An engine not closed before exit still gets its last answers on disk."""
    for saver in list(_open_savers):
        saver.close(timeout=30)
