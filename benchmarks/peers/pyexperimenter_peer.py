"""PyExperimenter on SQLite with CodeCarbon switched off (its default is on, and costs
more than a second per trial): fill the table from the grid, then ``execute``, which pulls
one row at a time and writes its status and results back."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from py_experimenter.experimenter import PyExperimenter
from py_experimenter.result_processor import ResultProcessor

from benchmarks import workloads as w
from benchmarks.protocol import main, stopwatch

CONFIG = """\
PY_EXPERIMENTER:
  n_jobs: {workers}
  Database:
    provider: sqlite
    database: bench
    table:
      name: {table}
      keyfields:
{keyfields}
      resultfields:
        y: BIGINT
"""


def _keyfield(name: str, values: list[int]) -> str:
    return f"        {name}:\n          type: INT\n          values: {values}\n"


def _experimenter(workers: int, table: str, keyfields: dict[str, list[int]]) -> PyExperimenter:
    text = CONFIG.format(
        workers=workers,
        table=table,
        keyfields="".join(_keyfield(k, v) for k, v in keyfields.items()).rstrip("\n"),
    )
    Path("config.yml").write_text(text)
    return PyExperimenter(
        experiment_configuration_file_path="config.yml",
        use_codecarbon=False,
        log_level=logging.WARNING,
    )


def _noop(keys: dict[str, Any], results: ResultProcessor, custom: dict[str, Any]) -> None:
    results.process_results(w.noop(int(keys["a"]), int(keys["b"])))


def _burn(keys: dict[str, Any], results: ResultProcessor, custom: dict[str, Any]) -> None:
    results.process_results({"y": w.burn(int(keys["i"]), int(keys["loops"]))["x"]})


def _run(exp: PyExperimenter, fn: Any, workers: int) -> dict[str, Any]:
    exp.fill_table_from_config()
    with stopwatch() as t:
        exp.execute(fn, n_jobs=workers, max_experiments=-1)
    table = exp.get_table()
    return {"wall_s": t["s"], "completed": int((table["status"] == "done").sum())}


def w0(p: dict[str, Any]) -> dict[str, Any]:
    grid = {"a": list(range(p["a"])), "b": list(range(p["b"]))}
    return _run(_experimenter(p["workers"], "w0", grid), _noop, p["workers"])


def w1(p: dict[str, Any]) -> dict[str, Any]:
    grid = {"i": list(range(p["trials"])), "loops": [p["loops"]]}
    return _run(_experimenter(p["workers"], "w1", grid), _burn, p["workers"])


if __name__ == "__main__":
    main({"W0": w0, "W1": w1})
