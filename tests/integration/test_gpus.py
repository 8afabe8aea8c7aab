"""GPU slots, tested without a GPU: ``CUDA_VISIBLE_DEVICES`` lists fake devices, and the
trials report which device they were given and when they ran on it.

The processes backend gives every slot's process its own ``CUDA_VISIBLE_DEVICES``; a
trial only sees that variable, so checking it from inside the trial is what a CUDA
library would see. The only thing faked is the outside boundary: the device list (and,
once, an ``nvidia-smi`` on PATH).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sweeplab as sl
from sweeplab.backends.gpus import gpu_slots, visible_gpus
from sweeplab.backends.processes import ProcessesBackend
from sweeplab.target import resolve_target
from tests.conftest import unavailable

STUDY = textwrap.dedent(
    """
    import os
    import time


    def on_gpu(i):
        start = time.time()
        time.sleep(0.3)
        return {
            "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "pid": os.getpid(),
            "start": start,
            "end": time.time(),
        }
    """
)


@pytest.fixture
def gpu_study(tmp_path: Path) -> Any:
    path = tmp_path / "gpu_study.py"
    path.write_text(STUDY)
    return resolve_target(f"{path}:on_gpu")


@pytest.fixture
def four_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of [start, end) spans that overlap at one instant."""
    events = sorted([(end, -1) for _, end in spans] + [(start, 1) for start, _ in spans])
    running = peak = 0
    for _, change in events:  # at a tie an end comes first: touching spans do not overlap
        running += change
        peak = max(peak, running)
    return peak


def run_on_gpus(fn: Any, tmp_path: Path, trials: int, **run_options: Any) -> dict[str, int]:
    """Run ``trials`` trials; return, per CUDA_VISIBLE_DEVICES value, the most at once."""
    exp = sl.Experiment(fn, name="gpu", store=f"sqlite:///{tmp_path / 'gpus.db'}")
    exp.add(sl.grid(i=range(trials)))
    report = exp.run(backend="processes", **run_options)
    assert report.done == trials, report
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in exp.results().to_dict("records"):
        spans[row["devices"]].append((row["start"], row["end"]))
    return {devices: most_at_once(s) for devices, s in spans.items()}


# -------------------------------------------------------------- the processes backend
def test_half_a_gpu_each_puts_two_trials_on_a_device_never_more(
    gpu_study: Any, tmp_path: Path, four_gpus: None
) -> None:
    peaks = run_on_gpus(gpu_study, tmp_path, 8, resources={"gpus": 0.5})
    assert sorted(peaks) == ["0", "1", "2", "3"], f"each trial sees one device: {peaks}"
    assert max(peaks.values()) <= 2, f"most trials at once per device: {peaks}"


def test_one_gpu_each_puts_one_trial_on_a_device_at_a_time(
    gpu_study: Any, tmp_path: Path, four_gpus: None
) -> None:
    peaks = run_on_gpus(gpu_study, tmp_path, 8, resources={"gpus": 1})
    assert sorted(peaks) == ["0", "1", "2", "3"]
    assert set(peaks.values()) == {1}, f"most trials at once per device: {peaks}"


def test_two_gpus_each_give_every_trial_a_pair_of_its_own(
    gpu_study: Any, tmp_path: Path, four_gpus: None
) -> None:
    peaks = run_on_gpus(gpu_study, tmp_path, 4, resources={"gpus": 2})
    assert sorted(peaks) == ["0,1", "2,3"]
    assert set(peaks.values()) == {1}, f"most trials at once per pair: {peaks}"


def test_the_experiments_resources_are_used_by_run(
    gpu_study: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    store = f"sqlite:///{tmp_path / 'gpus.db'}"
    exp = sl.Experiment(gpu_study, name="gpu", store=store, resources={"gpus": 0.5})
    exp.add(sl.grid(i=range(4)))
    report = exp.run(backend="processes")  # no resources here: the experiment's apply
    assert report.done == 4, report
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in exp.results().to_dict("records"):
        spans[row["devices"]].append((row["start"], row["end"]))
    assert sorted(spans) == ["0", "1"], f"each trial sees one device: {sorted(spans)}"
    assert max(most_at_once(s) for s in spans.values()) <= 2


def test_asking_for_gpus_when_none_is_visible_is_a_backend_error(
    gpu_study: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    exp = sl.Experiment(gpu_study, name="gpu", store=f"sqlite:///{tmp_path / 'gpus.db'}")
    exp.add(sl.grid(i=range(2)))
    with pytest.raises(sl.BackendError, match="no GPU is visible"):
        exp.run(backend="processes", resources={"gpus": 0.5})
    assert exp.status()["pending"] == 2, "nothing ran, nothing changed"


def test_fewer_workers_than_shares_still_spread_over_every_device(
    gpu_study: Any, tmp_path: Path, four_gpus: None
) -> None:
    assert ProcessesBackend(resources={"gpus": 0.5}).slots == 8  # by default, one per share
    peaks = run_on_gpus(gpu_study, tmp_path, 8, workers=4, resources={"gpus": 0.5})
    assert sorted(peaks) == ["0", "1", "2", "3"]
    assert set(peaks.values()) == {1}, f"four slots on four devices: {peaks}"


# ------------------------------------------------------------------- gpus.py, unit by unit
@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        ("0,1,2,3", ["0", "1", "2", "3"]),
        (" 2, 5 ", ["2", "5"]),
        ("GPU-8f6c2e1a,GPU-0d1b", ["GPU-8f6c2e1a", "GPU-0d1b"]),
        ("", []),
        ("-1", []),
    ],
)
def test_visible_gpus_reads_cuda_visible_devices(
    listed: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    assert visible_gpus() == expected


def test_visible_gpus_asks_the_driver_when_the_variable_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_gpus() == [], "no nvidia-smi: no GPU"
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nprintf '0\\n1\\n'\n")
    smi.chmod(0o755)
    assert visible_gpus() == ["0", "1"]
    smi.write_text("#!/bin/sh\nexit 9\n")  # a driver that fails: no GPU, not a crash
    assert visible_gpus() == []


@pytest.mark.parametrize(
    ("gpus", "devices", "slots"),
    [
        (0, ["0", "1"], []),
        (0.5, ["0", "1", "2", "3"], ["0", "1", "2", "3", "0", "1", "2", "3"]),
        (1 / 3, ["0", "1"], ["0", "1", "0", "1", "0", "1"]),
        (0.4, ["7"], ["7", "7"]),
        (1, ["0", "1", "2", "3"], ["0", "1", "2", "3"]),
        (2, ["0", "1", "2", "3"], ["0,1", "2,3"]),
        (2, ["0", "1", "2"], ["0,1"]),
        (3, ["4", "5", "6"], ["4,5,6"]),
    ],
)
def test_gpu_slots_share_and_split_devices(
    gpus: float, devices: list[str], slots: list[str]
) -> None:
    assert gpu_slots(gpus, devices) == slots


@pytest.mark.parametrize(
    ("gpus", "devices", "message"),
    [
        (0.5, [], "no GPU is visible"),
        (3, ["0", "1"], "only 2 are visible"),
        (1.5, ["0", "1", "2"], "whole number"),
    ],
)
def test_gpu_slots_refuse_what_cannot_be_given(
    gpus: float, devices: list[str], message: str
) -> None:
    with pytest.raises(sl.BackendError, match=message):
        gpu_slots(gpus, devices)


# ------------------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_without_gpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One run with gpus=0.5 on a local Ray started with num_gpus=0 (Ray takes 10-20 s to
    start here, so the tests below look at this one run): what it raised and left behind."""
    try:
        import ray
    except ImportError:
        unavailable("Ray (pip install 'sweeplab[ray]')")
    if ray.is_initialized():
        ray.shutdown()
    folder = tmp_path_factory.mktemp("ray-gpus")
    (folder / "gpu_study.py").write_text(STUDY)
    exp = sl.Experiment(
        resolve_target(f"{folder / 'gpu_study.py'}:on_gpu"),
        name="gpu",
        store=f"sqlite:///{folder / 'gpus.db'}",
    )
    exp.add(sl.grid(i=range(2)))
    seen: dict[str, Any] = {"error": None}
    with pytest.MonkeyPatch.context() as patch:
        # Ray reads its auth mode once per process: the one test_engines' Ray uses
        patch.setenv("RAY_AUTH_MODE", "disabled")
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        try:
            exp.run(backend="ray", workers=1, resources={"gpus": 0.5}, num_gpus=0)
        except Exception as exc:
            seen["error"] = exc
    seen["ray_running"] = ray.is_initialized()
    seen["workers"] = exp.store.workers()
    seen["counts"] = exp.status()
    try:
        yield seen
    finally:
        if ray.is_initialized():
            ray.shutdown()


def test_ray_refuses_gpu_trials_on_a_cluster_without_gpus(
    ray_without_gpus: dict[str, Any],
) -> None:
    error = ray_without_gpus["error"]
    assert isinstance(error, sl.BackendError), repr(error)
    assert "GPU" in str(error)
    assert ray_without_gpus["counts"]["pending"] == 2, "nothing ran, nothing changed"


def test_a_refused_ray_run_leaves_nothing_behind(ray_without_gpus: dict[str, Any]) -> None:
    assert not ray_without_gpus["ray_running"], "the Ray the backend started is still running"
    assert ray_without_gpus["workers"] == [], "the run is still registered as a worker"


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])  # forked trial processes, fresh ones
def test_a_worker_told_the_resources_gives_each_slot_its_own_gpu(kind, request, tmp_path):
    url = request.getfixturevalue(f"{kind}_url")
    (tmp_path / "gpu_study.py").write_text(STUDY)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0,1"}
    cli = [sys.executable, "-m", "sweeplab"]
    add = [*cli, "add", "gpu_study.py:on_gpu", "i=range(0,6)", "--store", url]
    subprocess.run(add, env=env, cwd=tmp_path, check=True, capture_output=True)
    worker = [*cli, "worker", "-j", "2", "--resources", "gpus=1", "--store", url, "--no-progress"]
    done = subprocess.run(worker, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in sl.Experiment.open("on_gpu", store=url).results().to_dict("records"):
        spans[row["devices"]].append((row["start"], row["end"]))
    assert sorted(spans) == ["0", "1"], f"each trial sees one device: {sorted(spans)}"
    assert max(most_at_once(s) for s in spans.values()) == 1


def test_a_worker_on_threads_cannot_give_out_gpus(tmp_path):
    cli = [sys.executable, "-m", "sweeplab", "worker", "--threads", "--resources", "gpus=1"]
    store = ["--store", f"sqlite:///{tmp_path / 'none.db'}"]
    refused = subprocess.run([*cli, *store], cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "backend 'threads' does not take resources" in refused.stderr
    assert not (tmp_path / "none.db").exists()


def test_resources_for_a_backend_already_made_are_refused(tmp_path):
    store = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(sl.errors.UsageError, match="give them to it"):
        sl.work(store, backend=ProcessesBackend(1), resources={"gpus": 1})
    assert not (tmp_path / "none.db").exists()  # refused before the store is opened
