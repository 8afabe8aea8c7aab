"""The demo study: a noisy objective over a small grid, with metrics logged per step.

    sweeplab run examples/study.py:simulate n=10,20,40 algo=ga,sa --repeat 5 \
        --backend processes -j 2 --store sqlite:///demo.db
"""

import random


def simulate(n, algo, trial):
    rng = random.Random(trial.seed)
    for step in range(3):
        trial.log(step=step, loss=1 / (step + 1))
    return {"objective": n * rng.random(), "algo_len": len(algo)}


if __name__ == "__main__":
    import sweeplab as sl

    exp = sl.Experiment(simulate, name="tsp", store="sqlite:///demo.db")
    exp.add(sl.grid(n=[10, 20, 40], algo=["ga", "sa"]), repeat=5)
    exp.run(backend="processes", workers=2)
    print(exp.summary(by=["n", "algo"]))
