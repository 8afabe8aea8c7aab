"""A slot's process made by forking the ``sweeplab`` program, where that is safe.

A fresh interpreter for a slot costs its start-up and the imports of everything a trial
needs: about 0.17 s of CPU on our 2-core machine, a quarter of what an idle worker cost,
paid by each of eight workers that share two cores (benchmark W4). A fork costs a few
milliseconds and inherits those imports. It is safe only in an interpreter that holds
nothing of the user's (no CUDA context, no open files of theirs, no user objects whose
state the child would share), no SQLite database (``interpreter`` says why) and has no
other thread (a lock held by one would stay held in the child forever): the ``sweeplab``
program (``cli.main.entry``) before it imports or unpickles a user's function, as a worker
of a server store whose trials run in its processes is, and only while the pool starts,
before its own threads. Everywhere else the pool starts fresh interpreters, as before.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time

from sweeplab.interpreter import sqlite_opened, user_code_loaded


def may_fork() -> bool:
    """Whether a slot's process may be forked from this one now (see the module doc)."""
    return (
        sys.platform == "linux"
        and not user_code_loaded()
        and not sqlite_opened()
        and threading.current_thread() is threading.main_thread()
        and threading.active_count() == 1
    )


def fork_process_worker(read_fd: int, write_fd: int, env: dict[str, str]) -> ForkedProcess:
    """Fork a child that serves calls on ``read_fd`` / ``write_fd`` (``process_worker.main``)."""
    parent = os.getpid()
    sys.stdout.flush()  # or what is buffered would be written twice
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return ForkedProcess(pid)
    code = 1
    try:
        _drop_what_is_the_parents(read_fd, write_fd)
        os.environ.update(env)
        imported_before = set(sys.modules)
        from sweeplab.backends.process_worker import main

        main(read_fd, write_fd, parent)
        code = 0
        _end_like_an_interpreter(imported_before)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        # never return into the parent's code, nor finalize the parent's objects
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _drop_what_is_the_parents(read_fd: int, write_fd: int) -> None:
    """Keep stdio and the two pipe ends; drop the parent's descriptors (a sibling's pipe, a
    socket or file of the store), its open stores, exit handlers and SIGTERM handler."""
    from sweeplab.execution import forget_open_stores

    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd > 2 and fd not in (read_fd, write_fd):
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own descriptor, closed already
    forget_open_stores()  # a trial that checkpoints opens the store anew, as it would fresh
    atexit._clear()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _end_like_an_interpreter(imported_before: set[str]) -> None:
    """What an interpreter's shutdown does for the user's code, which this child imported:
    wait for its threads, run its exit handlers, and free what the user's own modules hold
    (not the standard library's, nor installed packages', whose ends are their exit
    handlers), last name first, so that their objects are finalized and a file left open is
    flushed before it is closed. Nothing of the parent's is freed."""
    from sweeplab.target import forget_loaded_functions

    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    forget_loaded_functions()
    installed = tuple(
        os.path.join(path, "") for path in {*sysconfig.get_paths().values(), sys.prefix}
    )
    for name in reversed([n for n in sys.modules if n not in imported_before]):
        module = sys.modules[name]
        source = getattr(module, "__file__", None)
        if not source or os.path.abspath(source).startswith(installed):
            continue
        del sys.modules[name]
        namespace = module.__dict__
        for key in reversed(list(namespace)):
            if key != "__builtins__":
                namespace[key] = None
    gc.collect()


class ForkedProcess:
    """What the pool uses of ``subprocess.Popen``, for a forked child: wait, poll, kill."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:  # reaped by someone else: its status is lost
                    self.returncode = 0
                else:
                    if pid:
                        self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"process {self.pid}", timeout or 0.0)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # never signal a pid that is reaped and may be reused
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
