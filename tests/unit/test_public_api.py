"""The public API is what __all__ says, and it holds the names the README promises."""

import sweeplab as sl

PROMISED = {
    "Experiment",
    "experiment",
    "grid",
    "cases",
    "sample",
    "uniform",
    "loguniform",
    "randint",
    "choice",
    "work",
    "Trial",
    "TrialStatus",
    "RunReport",
    "RunInterrupted",
    "SweeplabError",
    "UsageError",
    "StoreError",
    "open_store",
}
VERBS = {"add", "run", "results", "summary", "metrics", "status", "reset", "wait"}


def test_all_is_exactly_the_public_names():
    public = {n for n in dir(sl) if not n.startswith("_") and n not in {"annotations"}}
    modules = {n for n in public if type(getattr(sl, n)).__name__ == "module"}
    assert set(sl.__all__) == public - modules | {"__version__"}


def test_promised_names_are_exported():
    assert set(sl.__all__) >= PROMISED


def test_experiment_has_every_verb():
    for verb in VERBS:
        assert callable(getattr(sl.Experiment, verb)), verb


def test_the_decorator_keeps_its_name_whatever_is_imported():
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(sl.__path__, "sweeplab."):
        if module.name.split(".")[-1] in {"__main__", "slurm_job", "process_worker"}:
            continue  # scripts, not modules to import
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError as exc:  # an engine whose extra is not installed
            if exc.name.split(".")[0] not in {"dask", "distributed", "ray", "mpi4py", "submitit"}:
                raise
    assert sl.experiment.__module__ == "sweeplab.experiments"
    assert callable(sl.experiment) and not isinstance(sl.experiment, type(sl))
