"""The ``sweeplab`` command: parse, call the library, print.

Exit status: 0 every trial done, 1 some trial failed, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from sweeplab.errors import StoreError, SweeplabError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
STATUS_CHOICES = ["failed", "running", "stuck", "pending", "done", "all"]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 with one line, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"sweeplab: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        help="store URL (default: $SWEEPLAB_STORE, else sqlite:///sweeplab.db)",
    )


def _execution_options(parser: argparse.ArgumentParser) -> None:
    """What `run` and `worker` share: slots, timeout, retries, limits, lease, display."""
    parser.add_argument(
        "-j",
        "--workers",
        type=int,
        default=None,
        help="parallel slots (-1: every core; default: every core)",
    )
    parser.add_argument("--timeout", type=float, help="seconds before a trial is stopped")
    parser.add_argument("--retries", type=int, default=0, help="extra attempts per trial")
    parser.add_argument("--max-trials", type=int, help="stop after starting this many")
    parser.add_argument(
        "--lease",
        type=float,
        default=60.0,
        help="seconds after which the trials of a silent runner are free again",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress display")


def _resources_option(parser: argparse.ArgumentParser, where: str) -> None:
    parser.add_argument(
        "--resources",
        metavar="cpus=N,gpus=G",
        help=f"what each trial needs, e.g. gpus=0.5 ({where})",
    )


def build_parser() -> argparse.ArgumentParser:
    from sweeplab import __version__
    from sweeplab.backends import BACKENDS

    parser = _Parser(prog="sweeplab", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sweeplab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show causes of errors")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    for verb, helptext in (
        ("run", "add the sweep's trials and run every pending one"),
        ("add", "add the sweep's trials without running them"),
    ):
        p = verbs.add_parser(verb, help=helptext, description=helptext)
        p.add_argument("target", help="path/file.py:function or package.module:function")
        p.add_argument(
            "overrides",
            nargs="*",
            metavar="KEY=VALUES",
            help="n=1,2,3  n=range(0,10,2)  algo=choice(ga,sa)  name='a b'",
        )
        _store_option(p)
        p.add_argument("--name", help="experiment name (default: the function's name)")
        p.add_argument("--repeat", type=int, default=1, help="repetitions of every point")
        if verb == "run":
            p.add_argument("--backend", default="serial", help=f"one of {', '.join(BACKENDS)}")
            _execution_options(p)
            _resources_option(p, "processes, ray, slurm")
            p.add_argument("--address", help="an existing Dask scheduler or Ray cluster")
            p.add_argument(
                "--threads-per-worker",
                type=int,
                help="dask: trials side by side in each worker process",
            )
            p.add_argument(
                "--option",
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help="any other backend option, e.g. partition=gpu (repeatable)",
            )
            p.add_argument(
                "--no-wait",
                action="store_true",
                help="dask/ray (with --address) and slurm: submit and return",
            )

    p = verbs.add_parser("wait", help="block until an experiment has no pending or running trial")
    p.add_argument("name")
    _store_option(p)
    p.add_argument("--timeout", type=float, help="give up after this many seconds (exit 1)")

    p = verbs.add_parser(
        "worker",
        help="run pending trials of a shared store until none is left",
        description="Claim, run and record trials from the store until none is left (or, "
        "with --wait, until stopped). Start any number, on any number of machines.",
    )
    _store_option(p)
    _execution_options(p)
    p.add_argument("--threads", action="store_true", help="run trials on threads, not processes")
    _resources_option(p, "each slot's process gets its own GPUs")
    p.add_argument(
        "-e",
        "--experiment",
        action="append",
        dest="experiments",
        metavar="NAME",
        help="only this experiment (repeatable; default: all)",
    )
    p.add_argument("--wait", action="store_true", help="when idle, wait for new trials")

    p = verbs.add_parser("status", help="experiments and their trials by status")
    p.add_argument("name", nargs="?", help="only this experiment")
    _store_option(p)

    p = verbs.add_parser(
        "results", help="one row per trial, as a table, CSV, JSON lines or Parquet"
    )
    p.add_argument("name")
    _store_option(p)
    p.add_argument("--format", default="table", choices=["table", "csv", "jsonl", "parquet"])
    p.add_argument("-o", "--output", help="write to this file (default: standard output)")
    p.add_argument(
        "--status",
        action="append",
        choices=STATUS_CHOICES,
        help="only trials in this status (repeatable)",
    )

    p = verbs.add_parser("show", help="one trial: params, result, error, metrics, artifacts")
    p.add_argument("name")
    p.add_argument("trial_id", type=int)
    _store_option(p)

    p = verbs.add_parser("reset", help="send failed (or stuck, or all) trials back to pending")
    p.add_argument("name")
    _store_option(p)
    p.add_argument(
        "--status",
        action="append",
        choices=STATUS_CHOICES,
        help="which trials (default: failed; repeatable)",
    )
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop like Ctrl-C (finish recording, hand back the rest)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from sweeplab.cli import commands

    # Ctrl-C and SIGTERM stop a run cleanly, even when a shell started us with SIGINT
    # ignored (as it does for background jobs).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = getattr(commands, f"cmd_{args.verb}")(args)
    except KeyboardInterrupt as exc:
        commands.report_interrupt(exc)
        sys.stdout.flush()
        sys.stderr.flush()
        terminated = _caused_by(exc, Terminated)
        # trial threads that ignore the interrupt must not hold the exit
        os._exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
    except BrokenPipeError:
        # the reader went away (`sweeplab results ... | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    except (UsageError, StoreError) as exc:
        _print_error(exc, args.verbose)
        code = EXIT_USAGE
    except SweeplabError as exc:
        _print_error(exc, args.verbose)
        code = EXIT_FAILED
    # whatever the outcome: SQLite folds its WAL back into the file, and `entry` may end
    # the process without the shutdown that would otherwise close them
    commands.close_stores()
    raise SystemExit(code)


def entry() -> None:
    """The ``sweeplab`` program: ``main``, then an exit that skips tearing down every module
    where that is safe.

    A worker's interpreter holds SQLAlchemy and a database driver; freeing them object by
    object at exit costs it about 80 ms of CPU, paid eight times over when eight workers
    share two cores (benchmark W4). When no user code was imported or unpickled here (a
    worker whose trials ran in its own processes, ``status``, ``results``) and no thread of
    ours is left, the exit runs the atexit handlers and flushes the streams, as any exit
    does, and ends there: what it skips finalizes no user object. ``main`` itself raises
    SystemExit, for callers that embed it.
    """
    from sweeplab.interpreter import started_as_program

    started_as_program()
    try:
        main()
    except SystemExit as exc:
        code = exc.code
        if not isinstance(code, int) or not _may_end_at_once():
            raise
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass  # a reader that went away, as at any exit
    os._exit(code)


def _may_end_at_once() -> bool:
    import threading

    from sweeplab.interpreter import user_code_loaded

    if user_code_loaded():
        return False
    main_thread = threading.main_thread()
    return not any(
        t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()
    )


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is anywhere in the chain of causes and contexts of ``exc``."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        if isinstance(e, kind):
            return True
        seen.add(id(e))
        todo += [e.__cause__, e.__context__]
    return False


def _print_error(exc: BaseException, verbose: bool) -> None:
    print(f"sweeplab: error: {exc}", file=sys.stderr)
    cause: Any = exc.__cause__
    while verbose and cause is not None:
        print(f"  caused by {type(cause).__name__}: {cause}", file=sys.stderr)
        cause = cause.__cause__
