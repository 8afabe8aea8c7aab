"""Rows built on one thread while another writes them.

Adding a million trials is two halves of about equal cost: Python builds each trial
(canonical JSON, key, seed, row), which holds the GIL, and the database driver writes
them. The two overlap on two cores when a chunk's write is one long call that releases
the GIL: SQLite's single INSERT ... SELECT from JSON, a server's round trip. (SQLite's
row-by-row executemany takes the GIL back after every row, and is slower with a
thread beside it.)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: chunks built and not yet written: enough to never starve the writer, few enough to
#: keep memory flat whatever the size of the space
AHEAD = 2

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def built_ahead(items: Iterable[T], size: int, build: Callable[[list[T]], R]) -> Iterator[R]:
    """``build`` of each chunk of ``size`` items, computed by a thread one or two ahead.

    An exception raised while iterating or building is raised here, in the caller's
    thread, where the chunks are consumed; the thread stops when the caller does.
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=AHEAD)
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            source = iter(items)
            while chunk := list(islice(source, size)):
                if not put(build(chunk)):
                    return
        except BaseException as exc:  # handed to the caller, who decides
            put(_Failed(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=produce, daemon=True, name="sweeplab-build-rows")
    thread.start()
    try:
        while True:
            value = ready.get()
            if value is _DONE:
                return
            if isinstance(value, _Failed):
                raise value.error
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)
