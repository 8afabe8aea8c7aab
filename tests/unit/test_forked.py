"""When a slot's process may be forked from this one, and the handle of a forked child."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from sweeplab import interpreter
from sweeplab.backends.forked import ForkedProcess, may_fork

MAY_FORK = """
import threading
from sweeplab import interpreter
from sweeplab.backends.forked import may_fork

seen = {"a user's interpreter": may_fork()}
interpreter.started_as_program()
seen["the program"] = may_fork()
interpreter.note_user_code()  # a user's objects, CUDA context or files may be here now
seen["after user code"] = may_fork()
interpreter._user_code = False
interpreter.note_sqlite_opened()  # SQLite's locks are the process's
seen["with SQLite open"] = may_fork()
interpreter._sqlite_opened = False
stop = threading.Event()
other = threading.Thread(target=stop.wait)
other.start()
seen["with another thread"] = may_fork()  # a lock it holds would stay held in the child
stop.set()
other.join()
seen["alone again"] = may_fork()
answers = []
thread = threading.Thread(target=lambda: answers.append(may_fork()))
thread.start()
thread.join()
seen["asked from another thread"] = answers[0]
print(seen)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the fork is Linux's only")
def test_only_the_program_alone_on_its_main_thread_may_fork():
    # in a fresh interpreter: pytest's own may run threads
    out = subprocess.run(
        [sys.executable, "-c", MAY_FORK], capture_output=True, text=True, check=True
    ).stdout
    assert ast.literal_eval(out) == {
        "a user's interpreter": False,
        "the program": True,
        "after user code": False,
        "with SQLite open": False,
        "with another thread": False,
        "alone again": True,
        "asked from another thread": False,
    }


def test_a_library_user_never_forks():
    # in a user's own interpreter (this one, as pytest runs it) nothing says otherwise
    assert interpreter.user_code_loaded()
    assert not may_fork()


def _child(code: str) -> ForkedProcess:
    """A child of this process running a shell line, with no Popen to reap it for us."""
    return ForkedProcess(os.posix_spawnp("sh", ["sh", "-c", code], os.environ))


def test_the_handle_reports_exit_codes_and_signals_like_popen():
    assert _child("exit 3").wait() == 3
    assert _child("kill -SEGV $$").wait() == -signal.SIGSEGV
    sleeper = _child("sleep 30")
    assert sleeper.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        sleeper.wait(timeout=0.05)
    sleeper.terminate()
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert sleeper.poll() == -signal.SIGTERM  # kept, not asked of the kernel again


def test_the_handle_never_signals_a_reaped_pid(monkeypatch):
    child = _child("exit 0")
    assert child.wait() == 0
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    child.kill()
    assert sent == []  # its pid may belong to another process by now


def test_two_threads_waiting_on_one_child_both_get_its_code():
    child = _child("sleep 0.2; exit 5")
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(child.wait())) for _ in range(2)]
    for t in threads:
        t.start()
    started = time.monotonic()
    for t in threads:
        t.join(timeout=10)
    assert codes == [5, 5]
    assert time.monotonic() - started < 5
