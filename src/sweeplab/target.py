"""Finding a user's function from anywhere: by import target, or by value.

A function that can be imported is recorded as ``package.module:function`` (or
``/abs/path/file.py:function`` when it came from a file), so a worker on another
machine imports it. A function defined in ``__main__``, a notebook or a closure is
stored by value with cloudpickle.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from sweeplab.errors import TargetError
from sweeplab.interpreter import note_user_code

TRIAL_PARAMETER = "trial"

_loaded: dict[str, Callable[..., Any]] = {}


def forget_loaded_functions() -> None:
    """Drop this process's references to the user's functions (a forked child's end)."""
    _loaded.clear()


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """How to get the function in another process: a target, or pickled bytes."""

    target: str | None
    pickled: bytes | None = None

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> FunctionRef:
        target = getattr(fn, "__sweeplab_target__", None) or _import_target(fn)
        if target is not None:
            return cls(target)
        try:
            return cls(None, cloudpickle.dumps(fn))
        except Exception as exc:
            raise TargetError(
                f"cannot ship {getattr(fn, '__qualname__', fn)!r} to other processes "
                f"({exc}): define it at the top level of a module"
            ) from exc

    @property
    def key(self) -> str:
        if self.target is not None:
            return self.target
        return "pickle:" + hashlib.sha256(self.pickled or b"").hexdigest()

    def load(self) -> Callable[..., Any]:
        """The function, imported or unpickled once per process (and once across threads)."""
        fn = _loaded.get(self.key)
        if fn is None:
            with _file_lock:
                fn = _loaded.get(self.key)
                if fn is None:
                    note_user_code()
                    fn = (
                        resolve_target(self.target)
                        if self.target
                        else cloudpickle.loads(self.pickled)
                    )
                    _loaded[self.key] = fn
        return fn


def _import_target(fn: Callable[..., Any]) -> str | None:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return None
    target = f"{module}:{qualname}"
    try:
        found = _unwrap(_resolve_module_target(module, qualname))
    except Exception:
        return None
    return target if found is fn else None


def _unwrap(obj: Any) -> Any:
    """An ``@sl.experiment``-decorated name stands for its function."""
    return getattr(obj, "__sweeplab_function__", None) or obj


def resolve_target(target: str) -> Callable[..., Any]:
    """Import ``path/file.py:function`` or ``package.module:function``."""
    note_user_code()
    module_part, sep, name = target.rpartition(":")
    if not sep or not module_part or not name:
        raise TargetError(
            f"target {target!r} is not MODULE:FUNCTION: write e.g. study.py:simulate "
            "or mypackage.study:simulate"
        )
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        fn = _resolve_file_target(Path(module_part), name)
    else:
        try:
            fn = _resolve_module_target(module_part, name)
        except ImportError as exc:
            raise TargetError(
                f"cannot import {module_part!r} for target {target!r}: {exc}; "
                "check the name, or give a file path like study.py:simulate"
            ) from exc
        except AttributeError as exc:
            raise TargetError(f"module {module_part!r} has no function {name!r}") from exc
        except Exception as exc:  # the module itself raised (or is not valid Python)
            raise TargetError(
                f"importing {module_part!r} for target {target!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    fn = _unwrap(fn)
    if not callable(fn):
        raise TargetError(f"{target!r} is a {type(fn).__name__}, not a function")
    return fn


def _resolve_module_target(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# a module half-way through its import is in sys.modules already: one loader at a time
_file_lock = threading.RLock()


def _resolve_file_target(path: Path, name: str) -> Callable[..., Any]:
    with _file_lock:
        return _load_file_target(path, name)


def _load_file_target(path: Path, name: str) -> Callable[..., Any]:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise TargetError(f"no file {path}: check the path in the target")
    module_name = path.stem
    module = sys.modules.get(module_name)
    if module is None or Path(getattr(module, "__file__", "") or "").resolve() != path:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise TargetError(f"cannot load {path} as Python source")
        module = importlib.util.module_from_spec(spec)
        # the file's folder goes on sys.path so its own imports of neighbours work
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            del sys.modules[module_name]
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise TargetError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    fn = _unwrap(getattr(module, name, None))
    if fn is None:
        raise TargetError(f"{path} has no function {name!r}")
    if callable(fn):
        # record where it came from, so other processes load the same file
        try:
            fn.__sweeplab_target__ = f"{path}:{name}"
        except (AttributeError, TypeError):
            pass
    return fn


@dataclass(frozen=True, slots=True)
class Signature:
    """What a function accepts: the parameters a point may set, and which it must."""

    name: str
    accepted: frozenset[str] | None  # None: it takes **kwargs
    required: frozenset[str]
    wants_trial: bool

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> Signature:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise TargetError(f"cannot read the parameters of {fn!r}: {exc}") from exc
        params = sig.parameters.values()
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names = {p.name for p in params if p.kind in kinds} - {TRIAL_PARAMETER}
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        required = {
            p.name
            for p in params
            if p.kind in kinds
            and p.default is inspect.Parameter.empty
            and p.name != TRIAL_PARAMETER
        }
        return cls(
            name=getattr(fn, "__name__", repr(fn)),
            accepted=None if takes_kwargs else frozenset(names),
            required=frozenset(required),
            wants_trial=TRIAL_PARAMETER in sig.parameters,
        )

    def check_names(self, names: Iterable[str]) -> None:
        """Every name must be a parameter of the function."""
        if self.accepted is None:
            return
        unknown = sorted(set(names) - self.accepted)
        if unknown:
            takes = ", ".join(sorted(self.accepted)) or "no parameters"
            raise TargetError(
                f"{self.name}() has no parameter {', '.join(map(repr, unknown))} (it takes "
                f"{takes}): fix the name in the sweep"
            )

    def check_point(self, point: dict[str, Any]) -> None:
        """A point must set every parameter that has no default."""
        missing = self.required.difference(point)
        if missing:
            raise TargetError(
                f"{self.name}() needs {', '.join(map(repr, sorted(missing)))}, which the space "
                f"does not set: add e.g. {sorted(missing)[0]}=... to the sweep"
            )
