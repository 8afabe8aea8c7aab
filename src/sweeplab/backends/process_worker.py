"""The child side of the processes backend: ``python -m sweeplab.backends.process_worker``.

A fresh interpreter (no re-import of the user's ``__main__``) started with R W PARENT, or
a fork of the ``sweeplab`` program that calls ``main`` (``forked``): it reads calls from
fd R and writes replies to fd W, one framed pickle each, and exits at once if PARENT is no
longer its parent:

    parent -> child   ("call", job_id, pickle of (fn, args, kwargs))  |  ("stop",)
    child -> parent   ("outcome", job_id, Outcome)     one per finished trial of a batch
                      ("result", job_id, value)        the call returned
                      ("error", job_id, exception)     the call raised

Streaming each trial's outcome lets the parent know, if the process dies, which trials
finished and which one was running. Ctrl-C belongs to the parent, so it is ignored here;
the process dies with its parent (PR_SET_PDEATHSIG on Linux, a watchdog elsewhere).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
import time
from typing import Any

import cloudpickle

_HEADER = struct.Struct("!Q")


def dumps(message: Any) -> bytes:
    """By the standard pickle, in C, where it can (our messages: several times faster than
    cloudpickle, whose pickler is Python); by cloudpickle what only it can pickle (a class
    or function defined in a script, sent by value). The standard pickle fails loudly on
    those rather than writing a reference the other side cannot resolve: in the parent a
    call's function goes through cloudpickle unless it is our own run_batch."""
    try:
        return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return cloudpickle.dumps(message)


def send(fd: int, message: Any) -> None:
    data = dumps(message)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def receive(fd: int) -> Any:
    """The next message; EOFError when the other side is gone."""
    header = _read_exactly(fd, _HEADER.size)
    return pickle.loads(_read_exactly(fd, _HEADER.unpack(header)[0]))


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _die_with_parent(parent: int) -> None:
    if os.getppid() != parent:  # the parent died while this interpreter was starting
        os._exit(1)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL) == 0:  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _streamer(write_fd: int, job_id: int) -> Any:
    return lambda outcome: send(write_fd, ("outcome", job_id, outcome))


def main(read_fd: int, write_fd: int, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    from sweeplab.execution import run_batch  # after the signal set-up: imports take time

    while True:
        try:
            message = receive(read_fd)
        except EOFError:
            return
        if message[0] == "stop":
            return
        _, job_id, payload = message
        try:
            _reply(write_fd, job_id, payload, run_batch)
        except OSError:
            return  # the parent is gone: nobody to report to


def _reply(write_fd: int, job_id: int, payload: bytes, run_batch: Any) -> None:
    try:
        fn, args, kwargs = pickle.loads(payload)
        if fn is run_batch:
            kwargs = {**kwargs, "on_outcome": _streamer(write_fd, job_id)}
        value = fn(*args, **kwargs)
    except BrokenPipeError:
        raise
    except BaseException as exc:
        try:
            send(write_fd, ("error", job_id, exc))
        except (pickle.PicklingError, TypeError, AttributeError):  # an unpicklable exception
            send(write_fd, ("error", job_id, RuntimeError(f"{type(exc).__name__}: {exc}")))
        return
    send(write_fd, ("result", job_id, None if fn is run_batch else value))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
