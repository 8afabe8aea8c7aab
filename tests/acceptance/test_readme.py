"""The README's examples, as a user types them: the command line and the Python API."""

from __future__ import annotations

import json
import random
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import sweeplab as sl
from tests.acceptance.support import counts, executions, records

# the README's command, word for word
README_RUN = shlex.split(
    "run study.py:simulate n=10,20,40 algo=ga,sa --repeat 5 --backend processes -j 2 "
    "--store sqlite:///runs.db"
)
STORE = ["--store", "sqlite:///runs.db"]
POINTS = {(n, algo) for n in (10, 20, 40) for algo in ("ga", "sa")}
ALL_DONE = {"pending": 0, "running": 0, "done": 30, "failed": 0}


def _status_row(stdout: str, name: str) -> list[str]:
    """The cells of ``name``'s row in the `status` table."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.replace("│", "|").split("|") if c.strip()]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row for {name!r} in:\n{stdout}")


def _check_objectives(frame: pd.DataFrame) -> None:
    """Each objective is the README's function of the trial's own seed."""
    for row in frame.itertuples():
        assert row.objective == row.n * random.Random(row.seed).random()
        assert row.algo_len == len(row.algo)


def test_readme_command_line(study, sweeplab, tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run = sweeplab(*README_RUN)
    assert run.returncode == 0, run.stderr
    assert "30 done" in run.stdout
    assert counts(url, "simulate") == ALL_DONE
    assert executions(tmp_path) == {
        f"n={n},algo={algo},rep={rep}": 1 for n, algo in POINTS for rep in range(5)
    }

    status = sweeplab("status", *STORE)
    assert status.returncode == 0, status.stderr
    # experiment, trials, pending, running, done, failed, ...
    assert _status_row(status.stdout, "simulate")[1:6] == ["30", "0", "0", "30", "0"]

    csv = sweeplab("results", "simulate", *STORE, "--format", "csv", "-o", "results.csv")
    assert csv.returncode == 0, csv.stderr
    from_csv = pd.read_csv(tmp_path / "results.csv")
    assert len(from_csv) == 30
    assert set(from_csv["status"]) == {"done"}
    assert sorted(from_csv["trial_id"]) == list(range(1, 31))
    assert set(zip(from_csv["n"], from_csv["algo"])) == POINTS
    assert (
        sorted(from_csv.groupby(["n", "algo"])["repetition"].apply(sorted).tolist())
        == [list(range(5))] * 6
    )
    _check_objectives(from_csv)

    jsonl = sweeplab("results", "simulate", *STORE, "--format", "jsonl")
    assert jsonl.returncode == 0, jsonl.stderr
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(rows) == 30
    # to 15 significant digits: test_jsonl_export_keeps_every_digit wants them all
    assert {r["trial_id"]: r["objective"] for r in rows} == pytest.approx(
        dict(zip(from_csv["trial_id"], from_csv["objective"])), rel=1e-14
    )

    parquet = sweeplab("results", "simulate", *STORE, "--format", "parquet", "-o", "r.parquet")
    assert parquet.returncode == 0, parquet.stderr
    from_parquet = pd.read_parquet(tmp_path / "r.parquet")
    assert list(from_parquet.columns) == list(from_csv.columns)
    same = ["trial_id", "n", "algo", "repetition", "seed", "status", "objective", "algo_len"]
    same += ["attempts", "duration_s", "host"]
    pd.testing.assert_frame_equal(from_parquet[same], from_csv[same], check_dtype=False)

    table = sweeplab("results", "simulate", *STORE)
    assert table.returncode == 0, table.stderr
    assert len(table.stdout.splitlines()) == 31  # a header and one line per trial

    first = records(url, "simulate")[0]
    show = sweeplab("show", "simulate", str(first.id), *STORE)
    assert show.returncode == 0, show.stderr
    assert f"trial {first.id} of 'simulate': done" in show.stdout
    assert f"params      {first.params}" in show.stdout
    assert f"result      {first.result}" in show.stdout
    assert f"seed {first.seed}   attempts 1" in show.stdout
    assert "metrics     loss: 3 values, last 0.333333" in show.stdout

    reset = sweeplab("reset", "simulate", *STORE)  # default: failed trials, of which none
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout == "reset 0 trials of 'simulate' to pending\n"
    reset = sweeplab("reset", "simulate", "--status", "all", *STORE)
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout == "reset 30 trials of 'simulate' to pending\n"
    assert counts(url, "simulate") == {"pending": 30, "running": 0, "done": 0, "failed": 0}

    again = sweeplab(*README_RUN)
    assert again.returncode == 0, again.stderr
    assert counts(url, "simulate") == ALL_DONE
    assert set(executions(tmp_path).values()) == {2}
    with sl.open_store(url, create=False) as store:
        rerun = sl.Experiment.open("simulate", store=store).results()
    # same seeds, same results
    assert dict(zip(rerun["trial_id"], rerun["objective"])) == dict(
        zip(from_csv["trial_id"], from_csv["objective"])
    )


def test_jsonl_export_keeps_every_digit(study, sweeplab, tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run = sweeplab("run", "study.py:simulate", "n=10,20,40", "algo=ga,sa", *STORE, "--no-progress")
    assert run.returncode == 0, run.stderr
    stored = {t.id: t.result["objective"] for t in records(url, "simulate")}
    jsonl = sweeplab("results", "simulate", *STORE, "--format", "jsonl")
    assert jsonl.returncode == 0, jsonl.stderr
    exported = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert {r["trial_id"]: r["objective"] for r in exported} == stored


@pytest.mark.parametrize("backend", ["serial", "processes"])
def test_max_trials_runs_exactly_that_many(backend, study, sweeplab, tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    args = ["run", "study.py:slow", "x=range(0,10)", "pause=0", "--backend", backend, "-j", "2"]
    run = sweeplab(*args, "--max-trials", "3", *STORE, "--no-progress")
    assert run.returncode == 0, run.stderr
    assert counts(url, "slow") == {"pending": 7, "running": 0, "done": 3, "failed": 0}
    assert sum(executions(tmp_path).values()) == 3
    assert all(t.attempts == 0 for t in records(url, "slow") if t.status == "pending")

    rest = sweeplab(*args, *STORE, "--no-progress")
    assert rest.returncode == 0, rest.stderr
    assert counts(url, "slow") == {"pending": 0, "running": 0, "done": 10, "failed": 0}
    assert executions(tmp_path) == {f"x={x}": 1 for x in range(10)}


API_SCRIPT = textwrap.dedent(
    """
    import json
    import random
    import sys

    import sweeplab as sl


    def simulate(n, algo, trial):          # `trial` is passed in when the function asks for it
        rng = random.Random(trial.seed)
        for step in range(3):
            trial.log(step=step, loss=1 / (step + 1))
        return {"objective": n * rng.random(), "algo_len": len(algo)}


    if __name__ == "__main__":
        backend, store, out = sys.argv[1:]
        exp = sl.Experiment(simulate, name="tsp", store=store)
        added = exp.add(sl.grid(n=[10, 20, 40], algo=["ga", "sa"]), repeat=5)
        added_again = exp.add(sl.grid(n=[10, 20, 40], algo=["ga", "sa"]), repeat=5)
        report = exp.run(backend=backend, workers=2)
        exp.results().to_pickle(f"{out}.results.pkl")
        exp.summary(by=["n", "algo"]).to_pickle(f"{out}.summary.pkl")
        exp.metrics().to_pickle(f"{out}.metrics.pkl")
        print(json.dumps({"added": [added, added_again], "ok": report.ok,
                          "done": report.done, "backend": report.backend}))
    """
)


def test_readme_python_api_gives_the_same_results_on_every_local_backend(tmp_path):
    script = tmp_path / "readme_api.py"
    script.write_text(API_SCRIPT)
    outputs = {}
    for backend in ("serial", "threads", "processes"):
        url = f"sqlite:///{tmp_path / backend}.db"
        ran = subprocess.run(
            [sys.executable, str(script), backend, url, str(tmp_path / backend)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
        said = json.loads(ran.stdout)
        assert said == {"added": [30, 0], "ok": True, "done": 30, "backend": backend}
        outputs[backend] = {
            part: pd.read_pickle(tmp_path / f"{backend}.{part}.pkl")
            for part in ("results", "summary", "metrics")
        }

    serial = outputs["serial"]
    results = serial["results"]
    assert len(results) == 30 and set(results["status"]) == {"done"}
    _check_objectives(results)
    summary = serial["summary"]
    assert len(summary) == 6
    assert set(summary[("objective", "count")]) == {5}
    metrics = serial["metrics"]
    assert len(metrics) == 90 and set(metrics["name"]) == {"loss"}
    assert metrics.groupby("trial_id")["step"].apply(list).tolist() == [[0, 1, 2]] * 30

    columns = ["trial_id", "n", "algo", "repetition", "seed", "status", "objective"]
    columns += ["algo_len", "attempts", "error"]
    metric_columns = ["trial_id", "n", "algo", "repetition", "attempt", "step", "name", "value"]
    for backend in ("threads", "processes"):
        other = outputs[backend]
        pd.testing.assert_frame_equal(other["results"][columns], results[columns])
        pd.testing.assert_frame_equal(other["summary"], summary)
        by_step = ["trial_id", "step"]
        pd.testing.assert_frame_equal(
            other["metrics"][metric_columns].sort_values(by_step, ignore_index=True),
            metrics[metric_columns].sort_values(by_step, ignore_index=True),
        )


def test_results_table_goes_to_a_file_too(study, sweeplab, tmp_path):
    run = sweeplab("run", "study.py:slow", "x=1,2", "pause=0", *STORE, "--no-progress")
    assert run.returncode == 0, run.stderr
    out = sweeplab("results", "slow", *STORE, "-o", "table.txt")
    assert (out.returncode, out.stdout) == (0, "")
    header, *rows = (tmp_path / "table.txt").read_text().splitlines()
    assert header.split()[:6] == ["trial_id", "x", "pause", "repetition", "seed", "status"]
    assert [row.split()[:2] + row.split()[5:7] for row in rows] == [
        ["1", "1", "done", "1"],
        ["2", "2", "done", "4"],
    ]


def test_status_of_an_empty_folder_names_the_missing_store(sweeplab, tmp_path: Path):
    status = sweeplab("status", *STORE)
    assert status.returncode == 2
    assert status.stderr.count("\n") == 1 and "runs.db" in status.stderr
    assert not (tmp_path / "runs.db").exists()
