"""One virtual environment per tool, made once under ``benchmarks/.envs/`` and reused.

An environment is rebuilt only when its ``requirements-NAME.txt`` or the Python that
runs the suite changes (sweeplab's own, an editable install of this checkout, also when
``pyproject.toml`` does); a stamp file inside it records what it was built from. Peers
are benchmark-only dependencies: none of them goes near sweeplab's own environment.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ENVS = HERE / ".envs"
STAMP = "sweeplab-bench.stamp"
INSTALL_TIMEOUT_S = 1200


@dataclass(frozen=True)
class Env:
    """A peer's environment, or why there is none."""

    name: str
    python: Path | None
    error: str | None = None


def requirements(name: str) -> Path:
    return HERE / f"requirements-{name}.txt"


def _stamp(name: str) -> str:
    text = requirements(name).read_text()
    if name == "sweeplab":
        text += (REPO / "pyproject.toml").read_text()
    return hashlib.sha256(f"{sys.version}\n{sys.executable}\n{text}".encode()).hexdigest()


def ensure(name: str, log=print) -> Env:
    """The environment for ``name``, built if it is missing or stale."""
    root = ENVS / name
    python = root / "bin" / "python"
    stamp = _stamp(name)
    if python.exists() and (root / STAMP).exists() and (root / STAMP).read_text() == stamp:
        return Env(name, python)
    log(f"  building environment {name} (once; reused by later runs)")
    shutil.rmtree(root, ignore_errors=True)
    ENVS.mkdir(parents=True, exist_ok=True)
    install_log = ENVS / f"{name}.log"
    steps = [
        [sys.executable, "-m", "venv", str(root)],
        [
            str(python),
            *("-m", "pip", "install", "--disable-pip-version-check", "-q"),
            *("-r", str(requirements(name))),
        ],
    ]
    with open(install_log, "w") as out:
        for argv in steps:
            out.write("$ " + " ".join(argv) + "\n")
            out.flush()
            try:
                done = subprocess.run(
                    argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=INSTALL_TIMEOUT_S,
                    cwd=REPO,  # where requirements-sweeplab.txt's "-e ." points
                )
            except subprocess.TimeoutExpired:
                return Env(name, None, f"install timed out after {INSTALL_TIMEOUT_S} s")
            if done.returncode != 0:
                return Env(name, None, f"install failed, see {install_log.relative_to(HERE)}")
    (root / STAMP).write_text(stamp)
    return Env(name, python)


def ensure_all(names: list[str], log=print) -> dict[str, Env]:
    """Build the missing environments side by side (pip waits on the network, not the CPU)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        envs = list(pool.map(lambda n: ensure(n, log), names))
    return {e.name: e for e in envs}
