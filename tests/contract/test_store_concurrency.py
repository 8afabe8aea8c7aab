"""The store contract under concurrency: ``add_trials`` and ``claim`` are atomic.

Threads sharing one store object run over every store; real processes, started at the
same instant, run over the stores that processes can share (SQLite, PostgreSQL,
MariaDB). Each test checks that no trial is claimed twice and that together they
claimed every one, or that every trial was created exactly once.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import sweeplab as sl
from sweeplab.store.base import Lease
from sweeplab.trial import TrialStatus
from tests.contract.values import HOST, ids_of, new_trials

THREADS = 4
#: each imports sweeplab (about half a CPU second): three contend enough on two cores
PROCESSES = 3
CHILD_TIMEOUT_S = 120

CLAIMER = textwrap.dedent(
    """
    import json, os, sys
    from sweeplab.store import open_store
    from sweeplab.store.base import Lease

    url, limit, experiment_id = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = open_store(url, create=False)
    lease = Lease(f"claimer-{os.getpid()}", "host-a", os.getpid())
    print("ready", flush=True)
    sys.stdin.readline()
    claimed = []
    while batch := store.claim(lease, limit, 60.0, 1, [experiment_id]):
        claimed.extend(c.task.id for c in batch)
    store.close()
    print(json.dumps({"owner": lease.owner, "claimed": claimed}), flush=True)
    """
)

ADDER = textwrap.dedent(
    """
    import json, sys
    from sweeplab.store import open_store
    from sweeplab.store.base import NewTrial

    url, points = sys.argv[1], int(sys.argv[2])
    rows = [
        NewTrial(f"{i:032x}", json.dumps({"x": i}), rep, i)
        for i in range(points)
        for rep in range(2)
    ]
    print("ready", flush=True)
    sys.stdin.readline()
    # opened only now: the processes also race to make the store's tables
    with open_store(url) as store:
        experiment_id = store.ensure_experiment("space", "study:f", None).id
        added = store.add_trials(experiment_id, rows)
    print(json.dumps({"experiment": experiment_id, "added": added}), flush=True)
    """
)


def run_at_once(script: str, *args: object) -> list[dict]:
    """Run ``script`` in PROCESSES fresh interpreters, released together once all are
    ready; return what each printed last, as JSON."""
    command = [sys.executable, "-c", script, *map(str, args)]
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(
                subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for _ in range(PROCESSES)
        ]
        # registered after the Popen contexts, so it runs first: none is left hanging
        stack.callback(_kill_survivors, procs)
        for proc in procs:
            if proc.stdout.readline() != "ready\n":
                _, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
                raise AssertionError(f"a child failed before it was ready:\n{err}")
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
            assert proc.returncode == 0, err
            outputs.append(json.loads(out.splitlines()[-1]))
    return outputs


def _kill_survivors(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# -- threads, over every store ---------------------------------------------------------
def test_threads_claiming_at_once_claim_each_trial_once(store, exp):
    store.add_trials(exp, new_trials(120))
    start = threading.Barrier(THREADS)

    def drain(i: int) -> tuple[str, list[int]]:
        lease = Lease(f"thread-{i}", HOST, 1000 + i)
        start.wait()
        claimed = []
        while batch := store.claim(lease, 3, 60, 1, [exp]):
            claimed.extend(c.task.id for c in batch)
        return lease.owner, claimed

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(drain, range(THREADS)))

    claimed = [trial_id for _, ids in results for trial_id in ids]
    assert Counter(claimed).most_common(1)[0][1] == 1
    assert sorted(claimed) == ids_of(store, exp)
    owners = {t.id: t.lease_owner for t in store.trials(exp)}
    for owner, ids in results:
        assert {owners[i] for i in ids} <= {owner}


def test_threads_adding_the_same_space_at_once_add_it_once(store, exp):
    start = threading.Barrier(THREADS)

    def add(_: int) -> int:
        start.wait()
        return store.add_trials(exp, new_trials(150))

    with ThreadPoolExecutor(THREADS) as pool:
        added = list(pool.map(add, range(THREADS)))

    assert sum(added) == 150
    assert sorted(t.params["x"] for t in store.trials(exp)) == list(range(150))


# -- processes, over the stores they can share -----------------------------------------
def test_processes_claiming_at_once_claim_each_trial_once(shared_store_url):
    with sl.open_store(shared_store_url) as store:
        experiment_id = store.ensure_experiment("exp", None, None).id
        other = store.ensure_experiment("other", None, None).id
        store.add_trials(experiment_id, new_trials(240))
        store.add_trials(other, new_trials(5))

    results = run_at_once(CLAIMER, shared_store_url, 4, experiment_id)

    claimed = [trial_id for r in results for trial_id in r["claimed"]]
    duplicates = [i for i, n in Counter(claimed).items() if n > 1]
    assert duplicates == []
    with sl.open_store(shared_store_url) as store:
        assert sorted(claimed) == ids_of(store, experiment_id)
        owners = {t.id: t.lease_owner for t in store.trials(experiment_id)}
        for r in results:
            assert {owners[i] for i in r["claimed"]} <= {r["owner"]}
        assert store.counts(other)[TrialStatus.PENDING] == 5


def test_processes_adding_the_same_space_at_once_create_each_trial_once(shared_store_url):
    points = 250
    results = run_at_once(ADDER, shared_store_url, points)

    assert len({r["experiment"] for r in results}) == 1
    assert sum(r["added"] for r in results) == 2 * points
    with sl.open_store(shared_store_url) as store:
        (experiment,) = store.experiments()
        trials = store.trials(experiment.id)
    assert sorted((t.params["x"], t.repetition) for t in trials) == [
        (x, rep) for x in range(points) for rep in range(2)
    ]
