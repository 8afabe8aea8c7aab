"""Live progress: a rich bar on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from sweeplab.runner import Progress

PLAIN_INTERVAL_S = 5.0


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe(p: Progress) -> str:
    return (
        f"{p.done}/{p.total} done, {p.failed} failed, {p.running} running, "
        f"{p.rate:.1f} trials/s, ETA {format_duration(p.eta_s)}"
    )


class ProgressDisplay:
    """Shows a run's progress on ``stream`` (standard error by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._last_plain = 0.0
        self._last: Progress | None = None
        self._bar = None
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(file=self.stream),
                transient=False,
            )
            self._task = self._bar.add_task("", total=None, status="starting")
            self._bar.start()

    def update(self, p: Progress) -> None:
        self._last = p
        if self._bar is not None:
            self._bar.update(
                self._task,
                description=p.experiment,
                total=p.total or None,
                completed=p.done + p.failed,
                status=describe(p),
            )
            return
        now = time.monotonic()
        if now - self._last_plain >= PLAIN_INTERVAL_S:
            self._last_plain = now
            print(
                f"[{format_duration(p.elapsed_s)}] {p.experiment}: {describe(p)}",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
