"""Where a server store's password comes from, so that it never has to be in a URL.

In order: the URL itself; ``SWEEPLAB_DB_PASSWORD``; a credentials file
(``SWEEPLAB_CREDENTIALS``, else ``~/.config/sweeplab/credentials.ini``) whose sections
are ``[user@host]`` or ``[host]`` with ``password =`` (and optionally ``user =``,
``port =``); then the driver's own: ``~/.pgpass`` and ``PGPASSWORD`` for PostgreSQL
(libpq reads them), ``~/.my.cnf`` for MySQL/MariaDB.

The password is put into the URL object that opens connections, and only there: every
message and log line uses ``render_as_string(hide_password=True)``.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeplab.errors import StoreError

if TYPE_CHECKING:  # a worker's PostgreSQL store reads credentials without SQLAlchemy
    from sqlalchemy.engine import URL

DEFAULT_FILE = Path("~/.config/sweeplab/credentials.ini")


def with_credentials(url: URL) -> URL:
    """``url`` with user, password and port filled in from the sources above."""
    if url.get_backend_name() == "sqlite":
        return url
    updates = missing_credentials(url.host, url.username, url.password, url.port)
    return url.set(**updates) if updates else url


def missing_credentials(
    host: str | None, username: str | None, password: str | None, port: int | None
) -> dict[str, Any]:
    """What the sources above add to a server URL's parts: ``password``, and from a file
    also ``username`` and ``port`` where the URL has none (the keys of ``URL.set``)."""
    if password:
        return {}
    env_password = os.environ.get("SWEEPLAB_DB_PASSWORD")
    if env_password:
        return {"password": env_password}
    section = _file_section(host, username)
    if section is None:
        return {}
    updates: dict[str, Any] = {}
    if section.get("password"):
        updates["password"] = section["password"]
    if section.get("user") and not username:
        updates["username"] = section["user"]
    if section.get("port") and not port:
        updates["port"] = int(section["port"])
    return updates


def driver_options(url: URL) -> dict[str, Any]:
    """Connection arguments that let a driver find its own credentials file."""
    if url.get_backend_name() in ("mysql", "mariadb") and not url.password:
        my_cnf = Path("~/.my.cnf").expanduser()
        if my_cnf.is_file():
            return {"read_default_file": str(my_cnf)}
    return {}


def _file_section(host: str | None, username: str | None) -> dict[str, str] | None:
    named = os.environ.get("SWEEPLAB_CREDENTIALS")
    path = Path(named).expanduser() if named else DEFAULT_FILE.expanduser()
    if not path.is_file():
        if named:
            raise StoreError(f"SWEEPLAB_CREDENTIALS names {path}, which is not a file")
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
    except configparser.Error as exc:
        raise StoreError(
            f"cannot read credentials file {path}: {type(exc).__name__} at line "
            f"{getattr(exc, 'lineno', '?')}; write [host] sections with password = ..."
        ) from None  # the parser's message may quote a password
    host = host or "localhost"
    for name in (f"{username}@{host}" if username else None, host, "default"):
        if name and parser.has_section(name):
            return dict(parser.items(name))
    return None
