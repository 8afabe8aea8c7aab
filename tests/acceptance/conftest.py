"""Fixtures for the acceptance tests: the real ``sweeplab`` command line, run in
``tmp_path`` next to the study file of ``support.STUDY``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.acceptance.support import STUDY


@pytest.fixture
def study(tmp_path: Path) -> Path:
    path = tmp_path / "study.py"
    path.write_text(STUDY)
    return path


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SWEEPLAB_STORE"}
    # a wide table for `status`, and a default store that is never this checkout's
    return {**env, "COLUMNS": "200", "SWEEPLAB_STORE": f"sqlite:///{tmp_path / 'default.db'}"}


@pytest.fixture
def sweeplab(
    tmp_path: Path, cli_env: dict[str, str]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``sweeplab(*args)``: run the CLI in ``tmp_path`` and wait for it."""

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sweeplab", *args],
            cwd=tmp_path,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def start_sweeplab(
    tmp_path: Path, cli_env: dict[str, str]
) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``start_sweeplab(*args)``: start the CLI in ``tmp_path``; killed at teardown if alive."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "sweeplab", *args],
            cwd=tmp_path,
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()
