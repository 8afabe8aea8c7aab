"""Riding out a server database that restarts or drops connections, for every SQL store.

Free of SQLAlchemy: a worker's PostgreSQL store (``postgres_direct``) retries the same way
without loading it. Each store says which of its errors are worth another try.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sweeplab.errors import StoreError

#: how long a server store keeps retrying a dropped connection (a restart, a failover)
RETRY_FOR_S = float(os.environ.get("SWEEPLAB_DB_RETRY_S", "300"))

#: how long opening a server store waits for a server that is restarting
OPEN_RETRY_S = float(os.environ.get("SWEEPLAB_DB_OPEN_RETRY_S", "30"))
#: and how long it waits when the connection is refused (a restart, or no server at all)
REFUSED_RETRY_S = 5.0
_REFUSED = re.compile(r"Connection refused|Can't connect", re.IGNORECASE)
_RESTARTING = re.compile(
    r"shutting down|starting up|in recovery mode|server closed the connection"
    r"|Lost connection|terminating connection|Connection refused|Can't connect",
    re.IGNORECASE,
)

log = logging.getLogger("sweeplab.store")


class Retrying(Protocol):
    def _transient(self, cause: BaseException | None) -> bool:
        """Whether the database error behind a StoreError is worth another try."""
        ...


_Method = TypeVar("_Method", bound=Callable[..., Any])


def retried(method: _Method) -> _Method:
    """Retry a store operation while a server database is unreachable.

    Every operation but ``add_trials`` (whose input can be read only once; adding again
    is idempotent) is retried. Safe because each is one transaction that committed or not,
    and each is idempotent or fenced: recording an outcome twice records it once, and a
    claim whose commit was lost leaves trials under this lease that the runner hands
    back when it finds itself holding trials it does not know.
    """

    @functools.wraps(method)
    def wrapper(self: Retrying, *args: Any, **kwargs: Any) -> Any:
        delay, deadline = 0.1, None
        while True:
            try:
                return method(self, *args, **kwargs)
            except StoreError as exc:
                if not self._transient(exc.__cause__):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + RETRY_FOR_S
                    log.warning("%s; retrying for up to %.0f s", exc, RETRY_FOR_S)
                if now >= deadline:
                    raise StoreError(f"{exc} (gave up after {RETRY_FOR_S:.0f} s)") from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    return wrapper  # type: ignore[return-value]


def open_with_retries(open_once: Callable[[], None]) -> None:
    """Open a server store, waiting out a server that is restarting; any other error is
    final at once (a wrong password or host must not hang the command line)."""
    deadline = time.monotonic() + OPEN_RETRY_S
    refused_deadline = time.monotonic() + REFUSED_RETRY_S
    delay = 0.2
    while True:
        try:
            open_once()
            return
        except StoreError as exc:
            cause = str(exc.__cause__)
            if not _RESTARTING.search(cause):
                raise
            if _REFUSED.search(cause) and time.monotonic() + delay > refused_deadline:
                raise  # most likely no server at all: say so soon
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def scrubbed(exc: BaseException | None, password: str | None) -> str:
    """The first line of a database error, with the password hidden should it appear."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return message.replace(password, "***") if password else message
