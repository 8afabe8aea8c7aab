"""What this interpreter holds that ending it, or forking it, must respect.

A user's code may be in it, unless the ``sweeplab`` program started it
(``cli.main.entry``) and no user function was imported or unpickled since (``target``, and
the processes backend for what its trial processes send back). Only then may the program
end without a full interpreter shutdown (``cli.main``) and fork its trial processes from
itself (``backends.forked``): neither may touch a user's objects, CUDA contexts or files.
An SQLite database opened here forbids the fork too: SQLite keeps its locks per process, so
a child that opened the same file would inherit the parent's lock state and fail.
No imports: the program asks at once.
"""

_user_code = True
_sqlite_opened = False


def started_as_program() -> None:
    """The ``sweeplab`` program owns this interpreter: no user code is in it yet."""
    global _user_code
    _user_code = False


def note_user_code() -> None:
    """Remember that a user's code ran here (an import, an unpickled function or error)."""
    global _user_code
    _user_code = True


def user_code_loaded() -> bool:
    return _user_code


def note_sqlite_opened() -> None:
    global _sqlite_opened
    _sqlite_opened = True


def sqlite_opened() -> bool:
    return _sqlite_opened
