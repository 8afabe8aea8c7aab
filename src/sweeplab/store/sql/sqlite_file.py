"""Reading an SQLite store file without writing a byte, and without SQLAlchemy."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to ``path`` that leaves no file beside it.

    Even read-only, SQLite makes the -wal and -shm files of a WAL database that no one
    has open. Such a database (no -wal file) has everything in its main file, so it is
    read as immutable instead, which makes neither.
    """
    with path.open("rb") as f:
        header = f.read(20)
    wal_mode = len(header) == 20 and header.startswith(b"SQLite format 3\x00") and header[18] == 2
    closed = not path.with_name(f"{path.name}-wal").exists()
    options = "mode=ro&immutable=1" if wal_mode and closed else "mode=ro"
    return sqlite3.connect(f"{path.resolve().as_uri()}?{options}", uri=True)
