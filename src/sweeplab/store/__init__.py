"""Stores: where experiments and trials live. ``open_store`` picks one from a URL.

- ``sqlite:///FILE`` (the default, ``sqlite:///sweeplab.db`` in the working directory)
- ``postgresql://user@host/db`` and ``mysql://user@host/db`` (extras ``postgres``, ``mysql``)
- ``memory://``: a store that lives in this process only, for tests and notebooks

``SWEEPLAB_STORE`` sets the default URL.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweeplab.store.base import BaseStore, Lease

DEFAULT_URL = "sqlite:///sweeplab.db"

__all__ = ["BaseStore", "Lease", "close_all", "default_url", "open_store"]

_opened: weakref.WeakSet[BaseStore] = weakref.WeakSet()


def __getattr__(name: str) -> Any:
    # the contract loads on first use: `sweeplab status` reads an SQLite file without it
    if name in ("BaseStore", "Lease"):
        from sweeplab.store import base

        return getattr(base, name)
    raise AttributeError(f"module 'sweeplab.store' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


def default_url() -> str:
    return os.environ.get("SWEEPLAB_STORE") or DEFAULT_URL


def open_store(
    url: str | BaseStore | None = None, *, create: bool = True, for_worker: bool = False
) -> BaseStore:
    """Open the store at ``url`` (default: ``SWEEPLAB_STORE``, else ``sqlite:///sweeplab.db``).

    ``create=False`` raises StoreError instead of making a store that is not there.
    ``for_worker=True`` (implies ``create=False``): the store a worker drains, which on
    PostgreSQL claims and records without loading SQLAlchemy (``postgres_direct``).
    """
    from sweeplab.store.base import BaseStore

    if isinstance(url, BaseStore):
        return url
    url = url or default_url()
    if url.startswith("memory:"):
        from sweeplab.store.memory import MemoryStore

        return MemoryStore()
    store: BaseStore
    if for_worker:
        from sweeplab.store.sql.postgres_direct import open_worker_store

        store = open_worker_store(url)
    else:
        from sweeplab.store.sql.store import SQLStore

        store = SQLStore(url, create=create)
    _opened.add(store)
    return store


def close_all() -> None:
    """Close every store ``open_store`` opened that is still in use somewhere."""
    for store in list(_opened):
        store.close()
