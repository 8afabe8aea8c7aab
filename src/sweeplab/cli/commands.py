"""What each ``sweeplab`` verb does, through the public API only."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import sweeplab as sl
from sweeplab.cli.progress import ProgressDisplay, format_duration
from sweeplab.errors import TargetError, UsageError

# Verbs import the heavier parts they need themselves: `sweeplab status` on an SQLite
# store answers in tens of milliseconds, and most of that is the interpreter's start.

EXIT_OK, EXIT_FAILED = 0, 1


def close_stores() -> None:
    """Close what the command opened, so SQLite folds its WAL back into the file."""
    from sweeplab.store import close_all

    close_all()


def _experiment_for(args: argparse.Namespace) -> tuple[sl.Experiment, Any]:
    """Resolve the target and parse the sweep before the store is touched."""
    from sweeplab.cli.overrides import parse_overrides
    from sweeplab.target import Signature, resolve_target

    fn = resolve_target(args.target)
    space = parse_overrides(args.overrides) if args.overrides else None
    if args.repeat < 1:
        raise UsageError(f"--repeat {args.repeat}: give 1 or more")
    exp = sl.Experiment(fn, name=args.name, store=args.store)
    if space is None and not Signature.of(fn).required:
        space = sl.cases([{}])  # a function without parameters: one point
    return exp, space


def _has_trials(name: str, store: str | None) -> bool:
    """Whether the store has trials of ``name``, without creating store or experiment."""
    from sweeplab.errors import NoStore, UnknownExperiment

    try:
        return sum(sl.Experiment.open(name, store=store).status().values()) > 0
    except (NoStore, UnknownExperiment):
        return False


def _sweep_example(fn: Any) -> str:
    """``x=1,2,3`` for the first required parameter of ``fn``: how to give a sweep."""
    from sweeplab.target import Signature

    return f"{sorted(Signature.of(fn).required)[0]}=1,2,3"


def cmd_add(args: argparse.Namespace) -> int:
    exp, space = _experiment_for(args)
    if space is None:
        raise TargetError(
            f"nothing to add: give the parameters to sweep, e.g. {_sweep_example(exp.fn)}"
        )
    added = exp.add(space, repeat=args.repeat)
    total = sum(exp.status().values())
    print(f"added {added} trials to {exp.name!r} ({total} in all) in {exp.store.display_url}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from sweeplab.backends import make_backend
    from sweeplab.runner import check_run_options

    exp, space = _experiment_for(args)
    check_run_options(args.timeout, args.retries, args.max_trials, args.lease)
    backend = make_backend(args.backend, args.workers, **_backend_options(args))
    # (a bad backend name or option fails here, before anything is written)
    if getattr(backend, "serves_only", False):  # an MPI rank other than 0 only runs trials
        exp.run(backend)
        return EXIT_OK
    if space is not None:
        exp.add(space, repeat=args.repeat)
    elif not _has_trials(exp.name, args.store):
        raise TargetError(
            f"{exp.name!r} has no trials: give the parameters to sweep, e.g. "
            f"{_sweep_example(exp.fn)}"
        )
    display = None if args.no_progress else ProgressDisplay()
    try:
        report = exp.run(
            backend,
            timeout=args.timeout,
            retries=args.retries,
            max_trials=args.max_trials,
            lease=args.lease,
            progress=display.update if display else False,
            wait=not args.no_wait,
        )
    finally:
        if display is not None:
            display.close()
    if args.no_wait:
        print(
            f"{exp.name}: submitted to {report.backend}; follow it with "
            f"`sweeplab status` or `sweeplab wait {exp.name}`"
        )
        return EXIT_OK
    _print_report(exp, report)
    return EXIT_FAILED if report.counts.get("failed") else EXIT_OK


def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    from sweeplab.cli.overrides import parse_override

    options: dict[str, Any] = {}
    if args.resources:
        options["resources"] = _resources(args.resources)
    if args.address:
        options["address"] = args.address
    if args.threads_per_worker:
        options["threads_per_worker"] = args.threads_per_worker
    for option in args.option:
        key, values = parse_override(option)
        options[key] = values[0] if len(values) == 1 else values
    return options


def _resources(text: str) -> dict[str, Any]:
    """``cpus=2,gpus=0.5`` as {"cpus": 2, "gpus": 0.5}."""
    from sweeplab.cli.overrides import parse_override

    return {key: value[0] for key, value in (parse_override(r) for r in _split_csv(text))}


def _split_csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def cmd_wait(args: argparse.Namespace) -> int:
    exp = sl.Experiment.open(args.name, store=args.store)
    try:
        counts = exp.wait(timeout=args.timeout)
    except TimeoutError as exc:
        print(f"sweeplab: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{exp.name}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    display = None if args.no_progress else ProgressDisplay()
    try:
        report = sl.work(
            args.store,
            args.workers,
            backend="threads" if args.threads else "processes",
            resources=_resources(args.resources) if args.resources else None,
            experiments=args.experiments,
            max_trials=args.max_trials,
            timeout=args.timeout,
            retries=args.retries,
            lease=args.lease,
            wait=args.wait,
            progress=display.update if display else None,
        )
    finally:
        if display is not None:
            display.close()
    ran = report.done + report.failed
    print(
        f"worker: ran {ran} trials ({report.done} done, {report.failed} failed, "
        f"{report.retried} retried) in {format_duration(report.duration_s)} of "
        f"{report.experiment}"
    )
    return EXIT_FAILED if report.failed else EXIT_OK


def _print_report(exp: sl.Experiment, report: sl.RunReport) -> None:
    ran = report.done + report.failed
    rate = ran / report.duration_s if report.duration_s > 0 else 0.0
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n)
    print(
        f"{exp.name}: ran {ran} trials ({report.done} done, {report.failed} failed, "
        f"{report.retried} retried) in {format_duration(report.duration_s)} "
        f"({rate:.1f} trials/s) on {report.backend}; now {counts or 'empty'}"
    )
    if report.counts.get("failed"):
        failed = exp.trials(status="failed")
        for t in failed[:5]:
            print(f"  trial {t.id} {t.params}: {t.error}")
        if len(failed) > 5:
            print(f"  ... and {len(failed) - 5} more")
        print(f"details: sweeplab show {exp.name} ID; retry: sweeplab reset {exp.name}")


def report_interrupt(exc: KeyboardInterrupt) -> None:
    report = getattr(exc, "report", None)
    if report is None:
        print("\ninterrupted", file=sys.stderr)
        return
    pending = report.counts.get("pending", 0)
    print(
        f"\ninterrupted: {report.done} trials done and {report.failed} failed in this run are "
        f"recorded; {pending} pending. Run the same command again to finish.",
        file=sys.stderr,
    )


def cmd_status(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console
    from rich.table import Table

    seen = sl.overview(args.store, args.name)
    table = Table(title=f"store {seen.url}")
    columns = ("experiment", "trials", "pending", "running", "done", "failed", "rate", "ETA")
    for column in columns:
        table.add_column(column, justify="left" if column == "experiment" else "right")
    for exp in seen.experiments:
        table.add_row(
            exp.name,
            str(exp.trials),
            *(str(exp.counts[s]) for s in ("pending", "running", "done", "failed")),
            f"{exp.rate:.1f}/s" if exp.rate else "-",
            "-" if exp.eta_s is None else format_duration(exp.eta_s),
        )
    console = Console()
    console.print(table)
    if seen.workers:
        now = time.time()
        console.print(f"{len(seen.workers)} worker(s):")
        for w in seen.workers:
            silent = now - w.heartbeat_at
            state = "alive" if silent < 120 else f"silent for {format_duration(silent)}"
            console.print(
                f"  {w.host} pid {w.pid}: {w.backend}, {w.slots} slots, up "
                f"{format_duration(now - w.started_at)}, {state}"
            )
    return EXIT_OK


def cmd_results(args: argparse.Namespace) -> int:
    from sweeplab.results import export

    exp = sl.Experiment.open(args.name, store=args.store)
    frame = exp.results(status=args.status)
    if args.format == "table":
        text = frame.to_string(index=False) + "\n"
        if args.output:
            with open(args.output, "w") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    if args.output:
        with open(args.output, "wb") as f:
            export(frame, args.format, f)
    else:
        export(frame, args.format, sys.stdout.buffer)
        sys.stdout.flush()
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    exp = sl.Experiment.open(args.name, store=args.store)
    t = exp.trial(args.trial_id)
    lines = [
        f"trial {t.id} of {t.experiment!r}: {t.status}",
        f"  params      {t.params}",
        f"  repetition  {t.repetition}   seed {t.seed}   attempts {t.attempts}",
    ]
    if t.duration_s is not None:
        lines.append(f"  duration    {t.duration_s:.3f} s on {t.host}")
    if t.result is not None:
        lines.append(f"  result      {t.result}")
    if t.error:
        lines.append(f"  error       {t.error}")
    metrics = exp.metrics()
    mine = metrics[metrics["trial_id"] == t.id]
    if not mine.empty:
        lines.append(
            "  metrics     "
            + ", ".join(
                f"{name}: {len(g)} values, last {g['value'].iloc[-1]:g}"
                for name, g in mine.groupby("name", sort=False)
            )
        )
    artifacts = exp.artifacts(t.id)
    if artifacts:
        lines.append(
            "  artifacts   " + ", ".join(f"{n} ({len(d)} bytes)" for n, d in artifacts.items())
        )
    if t.traceback:
        lines.append("  traceback:")
        lines.extend("    " + line for line in t.traceback.rstrip().splitlines())
    print("\n".join(lines))
    return EXIT_OK


def cmd_reset(args: argparse.Namespace) -> int:
    exp = sl.Experiment.open(args.name, store=args.store)
    n = exp.reset(args.status or "failed")
    print(f"reset {n} trials of {exp.name!r} to pending")
    return EXIT_OK
