"""Every error sweeplab raises on purpose.

    SweeplabError                 root: catch this to catch them all
    ├── UsageError                bad input from the user; the CLI prints one line and exits 2
    │   ├── SpaceError            a parameter space or point that cannot be stored
    │   ├── TargetError           a function target that cannot be imported or called
    │   ├── OverrideError         malformed sweep syntax on the command line
    │   ├── BackendError          an unknown backend, or one whose extra is not installed
    │   └── UnknownExperiment     an experiment name the store does not have
    ├── StoreError                the store cannot be opened or used
    │   ├── NoStore               there is no store at that URL (and none was to be made)
    │   ├── NotAStore             the file or database exists but is not a sweeplab store
    │   ├── SchemaVersionError    the store was made by another schema version
    │   └── LeaseLost             a trial's lease was taken over by another worker
    └── ResultError               a trial returned something that cannot be stored

Foreign errors (SQLAlchemy, the DB drivers, pickling) are translated into these
at one boundary each, always with ``raise ... from exc`` so the cause is kept.
Messages name the problem and the fix, and never contain a password.
"""

from __future__ import annotations


class SweeplabError(Exception):
    """Root of every error sweeplab raises on purpose."""


class UsageError(SweeplabError):
    """The user asked for something that cannot be done; nothing was changed."""


class SpaceError(UsageError):
    """A parameter space or one of its points cannot be turned into trials."""


class TargetError(UsageError):
    """A function target cannot be imported, or does not take the parameters given."""


class OverrideError(UsageError):
    """A ``key=values`` argument on the command line is malformed."""


class BackendError(UsageError):
    """An unknown backend, or one whose optional dependency is not installed."""


class UnknownExperiment(UsageError):
    """The store has no experiment of that name."""


class StoreError(SweeplabError):
    """The store cannot be opened or used."""


class NoStore(StoreError):
    """There is no store at that URL, and the caller did not ask to create one."""


class NotAStore(StoreError):
    """The URL points at something that exists but is not a sweeplab store."""


class SchemaVersionError(StoreError):
    """The store was written by a sweeplab with another schema version."""


class ResultError(SweeplabError):
    """A trial returned (or logged) a value that cannot be stored as JSON."""


class LeaseLost(StoreError):
    """The trial is no longer held by this worker: its lease expired and was taken over."""
