"""The engines, for real: one study run unchanged on every backend, Dask's heterogeneous
slots, trials that kill their worker, and runs that outlive the process that submitted them.

Dask runs on a ``LocalCluster`` started by the backend, or on a scheduler and workers
started here as subprocesses; Ray on a local instance the backend starts for its run, or
on one head started with ``ray start --head`` and shared by the module (Ray takes 10-20 s
to start here). Nothing is mocked. A missing engine skips on a
laptop and fails under ``CI=true`` (``tests.conftest.unavailable``).
"""

from __future__ import annotations

import importlib
import itertools
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

import sweeplab as sl
from sweeplab.target import resolve_target
from tests.conftest import unavailable

STUDY = textwrap.dedent(
    """
    import os
    import random
    import threading
    import time
    import uuid
    from pathlib import Path

    HERE = Path(__file__).parent


    def study(a, b, trial):
        # what every backend must give back identically: seeded randomness, logs, a dict
        rng = random.Random(trial.seed)
        for step in range(3):
            trial.log(step=step, loss=rng.random())
        return {"score": a * 100 + b + rng.random(), "label": f"{a}/{b}", "parts": {"sum": a + b}}


    # -- heterogeneous slots: data loaded once per process, shared by its threads -----
    _CACHE = {}
    _LOCK = threading.Lock()


    def _data():
        with _LOCK:
            if "data" not in _CACHE:
                time.sleep(0.2)  # a slow load: both threads of a process ask for it at once
                load = {"id": uuid.uuid4().hex, "pid": os.getpid(), "at": time.time()}
                loads = HERE / "loads"
                loads.mkdir(exist_ok=True)
                (loads / load["id"]).write_text(str(os.getpid()))
                _CACHE["data"] = load
            return _CACHE["data"]


    def shared(i):
        data = _data()
        start = time.time()
        time.sleep(0.6)
        return {
            "pid": os.getpid(),
            "load_id": data["id"],
            "load_pid": data["pid"],
            "start": start,
            "end": time.time(),
        }


    # -- a trial that kills the process running it ------------------------------------
    def fragile(i, pause=0.0):
        if i == 3:
            time.sleep(pause)
            os._exit(7)
        return {"i": i}


    # -- runs that outlive their submitter: one line per execution, the last thing done --
    def counted(i):
        time.sleep(0.5)
        runs = HERE / "runs"
        runs.mkdir(exist_ok=True)
        with open(runs / str(i), "a") as f:
            f.write(f"{os.getpid()}\\n")
        return {"square": i * i}
    """
)

STABLE = ["trial_id", "a", "b", "repetition", "seed", "status", "score", "label", "parts.sum"]


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "engine_study.py"
    path.write_text(STUDY)
    return path


def load(study_file: Path, name: str) -> Callable[..., Any]:
    """The function ``name`` of the study file, as the CLI would load it (by path)."""
    return resolve_target(f"{study_file}:{name}")


@pytest.fixture
def study_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The study as an importable module (recorded as ``module:function``), importable by
    every engine's workers: the folder is on this process's path (Dask's and the process
    pools' children inherit it) and is the working directory (Ray's workers and
    sweeplab's process workers start there).

    The Dask runs with two threads per worker use this rather than a file target, whose
    loading raced between threads before the loader took a lock."""
    name = f"engine_study_{uuid.uuid4().hex[:8]}"  # no stale module or cached function
    (tmp_path / f"{name}.py").write_text(STUDY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


def store_for(tmp_path: Path, backend: str) -> str:
    return f"sqlite:///{tmp_path / f'{backend}.db'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Ray reads its auth mode once per process, so every Ray this process starts or joins
#: runs with the one a ``ray start --head`` cluster here needs
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def need_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import ray
    except ImportError:
        unavailable("Ray (pip install 'sweeplab[ray]')")
    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, value)
    # the backend starts a local Ray of its own for the run, and stops it after
    assert not ray.is_initialized(), "a Ray from another test is still running here"


def need_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        unavailable("Dask (pip install 'sweeplab[dask]')")


def this_machine_ip() -> str:
    """Where a Ray head started here listens (a driver given 127.0.0.1 does not get in)."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    ipv4 = [ip for ip in out if ":" not in ip]
    return ipv4[0] if ipv4 else "127.0.0.1"


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray cluster started by ``ray start --head`` (2 CPUs) for the module's tests,
    stopped with ``ray stop``; yields its address and the environment to reach it."""
    try:
        import ray
    except ImportError:
        unavailable("Ray (pip install 'sweeplab[ray]')")
    if shutil.which("ray") is None:
        unavailable("the ray command (pip install 'sweeplab[ray]')")
    if ray.is_initialized():
        ray.shutdown()
    port = free_port()
    while port == 6379:  # Redis's port here
        port = free_port()
    env = {**os.environ, **RAY_ENV}
    command = ["ray", "start", "--head", "--port", str(port), "--num-cpus", "2"]
    command += ["--include-dashboard=false", "--disable-usage-stats"]
    head = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    try:
        assert head.returncode == 0, head.stdout + head.stderr
        with pytest.MonkeyPatch.context() as patch:
            for key, value in RAY_ENV.items():  # this process is a driver too
                patch.setenv(key, value)
            yield f"{this_machine_ip()}:{port}", env
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True, timeout=60)


# --------------------------------------------------------------- the same study everywhere
def run_study(module: ModuleType, tmp_path: Path, key: str, backend: Any, **options: Any):
    exp = sl.Experiment(module.study, name="same", store=store_for(tmp_path, key))
    assert exp.add(sl.grid(a=[1, 2, 3], b=[0, 5]), repeat=2) == 12
    report = exp.run(backend=backend, **options)
    assert (report.done, report.failed) == (12, 0), f"{key}: {report}"
    frame = exp.results()
    metrics = exp.metrics()[["trial_id", "step", "name", "value"]]
    return (
        frame[STABLE].sort_values("trial_id").reset_index(drop=True),
        metrics.sort_values(["trial_id", "step", "name"]).reset_index(drop=True),
    )


def test_the_same_study_gives_identical_tables_on_every_backend(
    study_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_dask()
    need_ray(monkeypatch)
    spawn = multiprocessing.get_context("spawn")
    tables = {"serial": run_study(study_module, tmp_path, "serial", "serial")}
    runs: dict[str, tuple[Any, dict[str, Any]]] = {
        "threads": ("threads", {"workers": 2}),
        "processes": ("processes", {"workers": 2}),
        "dask": ("dask", {"workers": 2, "threads_per_worker": 2}),
        "ray": ("ray", {"workers": 2}),
    }
    for key, (backend, options) in runs.items():
        tables[key] = run_study(study_module, tmp_path, key, backend, **options)
    with ThreadPoolExecutor(2) as pool:
        tables["thread-pool"] = run_study(study_module, tmp_path, "thread-pool", pool)
    with ProcessPoolExecutor(2, mp_context=spawn) as pool:
        tables["process-pool"] = run_study(study_module, tmp_path, "process-pool", pool)

    expected_results, expected_metrics = tables["serial"]
    assert len(expected_results) == 12 and set(expected_results["status"]) == {"done"}
    assert len(expected_metrics) == 12 * 3
    assert expected_results["seed"].nunique() == 12
    for key, (results, metrics) in tables.items():
        pd.testing.assert_frame_equal(results, expected_results, obj=f"results on {key}")
        pd.testing.assert_frame_equal(metrics, expected_metrics, obj=f"metrics on {key}")


# ------------------------------------------------------------------ heterogeneous slots
def test_dask_threads_of_one_worker_share_what_it_loaded(
    study_module: ModuleType, tmp_path: Path
) -> None:
    need_dask()
    exp = sl.Experiment(study_module.shared, store=store_for(tmp_path, "dask"))
    exp.add(sl.grid(i=range(8)))
    report = exp.run(backend="dask", workers=2, threads_per_worker=2)
    assert report.done == 8, report
    rows = exp.results().to_dict("records")

    loads = Counter(p.read_text() for p in (tmp_path / "loads").iterdir())
    pids = {str(r["pid"]) for r in rows}
    assert set(loads) == pids and set(loads.values()) == {1}, f"loads per pid: {loads}"
    for r in rows:  # every trial used the load of its own process
        assert r["load_pid"] == r["pid"]
    assert len({r["load_id"] for r in rows}) == len(pids)

    def overlaps(pid: int) -> bool:
        spans = sorted((r["start"], r["end"]) for r in rows if r["pid"] == pid)
        return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))

    assert any(overlaps(int(pid)) for pid in pids), "no two trials of one process ran at once"


SLOW_IMPORT = textwrap.dedent(
    """
    import os
    import time

    time.sleep(1.0)  # a heavy import (torch, a data set): the module is half made meanwhile


    def heavy(i):
        time.sleep(0.2)
        return {"pid": os.getpid()}
    """
)


def test_dask_threads_load_a_file_target_without_a_race(tmp_path: Path) -> None:
    need_dask()
    path = tmp_path / "heavy_study.py"
    path.write_text(SLOW_IMPORT)
    exp = sl.Experiment(load(path, "heavy"), store=store_for(tmp_path, "dask"))
    exp.add(sl.grid(i=range(8)))
    report = exp.run(backend="dask", workers=2, threads_per_worker=2)
    errors = exp.results()["error"].dropna().tolist()
    assert (report.done, report.failed) == (8, 0), errors[:1]


# ------------------------------------------------------------- a trial kills its worker
@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_a_trial_that_kills_its_worker_fails_alone(
    engine: str, study_file: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    options: dict[str, Any] = {"workers": 2}
    if engine == "dask":
        need_dask()  # Dask's defaults: the nanny restarts the worker, the task is tried 4 times
    else:
        options["address"], _ = request.getfixturevalue("ray_head")
    exp = sl.Experiment(load(study_file, "fragile"), store=store_for(tmp_path, engine))
    exp.add(sl.grid(i=range(6)))
    report = exp.run(backend=engine, **options)
    frame = exp.results().set_index("i")
    assert (report.done, report.failed) == (5, 1), frame["error"].dropna().to_dict()
    assert frame.loc[3, "status"] == "failed"
    assert frame.loc[3, "error_kind"] == "crash", frame.loc[3, "error"]
    assert set(frame.drop(index=3)["status"]) == {"done"}


def test_a_trial_queued_behind_a_killer_on_its_dask_worker_is_not_blamed(
    study_file: Path, tmp_path: Path
) -> None:
    need_dask()
    import dask

    exp = sl.Experiment(load(study_file, "fragile"), store=store_for(tmp_path, "queued"))
    exp.add(sl.grid(i=[3, 4], pause=0.5))  # 3 dies after 0.5 s; 4 is queued behind it
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        report = exp.run(backend="dask", workers=1)
    frame = exp.results().set_index("i")
    assert frame.loc[3, "error_kind"] == "crash"
    assert frame.loc[4, "status"] == "done", frame.loc[4, "error"]
    assert (report.done, report.failed) == (1, 1)


# ----------------------------------------------------------- runs that outlive the submitter
SUBMITTER = textwrap.dedent(
    """
    import sys

    import sweeplab as sl
    from sweeplab.target import resolve_target

    study, store, backend, address = sys.argv[1:5]
    exp = sl.Experiment(resolve_target(study + ":counted"), name="detached", store=store)
    exp.add(sl.grid(i=range(10)))
    report = exp.run(backend=backend, address=address, wait=False)
    print("submitted", report.counts, flush=True)
    """
)


def submit_and_wait(
    study_file: Path, tmp_path: Path, backend: str, address: str, env: dict[str, str]
) -> None:
    """A submitter subprocess adds the trials, starts the workers and exits; this process
    then follows the run from the store alone."""
    store = store_for(tmp_path, backend)
    submitter = tmp_path / "submit.py"
    submitter.write_text(SUBMITTER)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(submitter), str(study_file), store, backend, address],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    submitter_gone = time.time()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submitted" in done.stdout

    exp = sl.Experiment.open("detached", store=store)
    counts = exp.wait(timeout=120, poll=0.5)
    assert counts["done"] == 10 and counts["failed"] == 0, counts
    runs = {p.name: p.read_text().split() for p in (tmp_path / "runs").iterdir()}
    assert sorted(runs, key=int) == [str(i) for i in range(10)]
    assert all(len(lines) == 1 for lines in runs.values()), f"ran more than once: {runs}"
    frame = exp.results()
    assert sorted(frame["square"]) == [i * i for i in range(10)]
    # 5 s of trials on 2 slots: the submitter did not wait for them
    assert frame["finished_at"].max().timestamp() > submitter_gone
    assert time.monotonic() - started < 180


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.2)


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """A real scheduler and two single-thread worker processes, as subprocesses."""
    need_dask()
    if shutil.which("dask") is None:
        unavailable("the dask command (pip install 'sweeplab[dask]')")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "wb") as log:
            started.append(
                subprocess.Popen(
                    ["dask", *args, "--no-dashboard"],
                    cwd=tmp_path,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    try:
        start("scheduler", "scheduler", "--port", str(port))
        start("worker", "worker", address, "--nworkers", "2", "--nthreads", "1")
        from distributed import Client

        def two_workers() -> bool:
            try:
                with Client(address, timeout=5) as client:
                    return len(client.scheduler_info()["workers"]) == 2
            except OSError:
                return False

        wait_for(two_workers, 60, "two Dask workers joining the scheduler")
        yield address
    finally:
        for process in reversed(started):  # workers first, then the scheduler
            if process.poll() is None:
                os.killpg(process.pid, 15)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


def test_dask_run_outlives_its_submitter(
    study_file: Path, tmp_path: Path, dask_cluster: str
) -> None:
    submit_and_wait(study_file, tmp_path, "dask", dask_cluster, dict(os.environ))


@pytest.mark.slow
def test_ray_run_outlives_its_submitter(
    study_file: Path, tmp_path: Path, ray_head: tuple[str, dict[str, str]]
) -> None:
    address, env = ray_head
    submit_and_wait(study_file, tmp_path, "ray", address, env)


def test_wait_false_refuses_a_cluster_that_dies_with_the_run(study_file: Path, tmp_path: Path):
    need_dask()
    exp = sl.Experiment(load(study_file, "counted"), store=store_for(tmp_path, "refused"))
    exp.add(sl.grid(i=range(2)))
    with pytest.raises(sl.BackendError, match="address="):
        exp.run(backend="dask", workers=1, wait=False)
    assert exp.status()["pending"] == 2


def test_an_unreachable_scheduler_is_a_backend_error(study_file: Path, tmp_path: Path) -> None:
    need_dask()
    import dask

    exp = sl.Experiment(load(study_file, "counted"), store=store_for(tmp_path, "unreachable"))
    exp.add(sl.grid(i=range(2)))
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
        pytest.raises(sl.BackendError, match=address),
    ):
        exp.run(backend="dask", address=address)
    assert exp.status()["pending"] == 2
