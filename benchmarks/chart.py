"""The comparison chart: ``python -m benchmarks.chart results/latest.json results/comparison.png``.

Runs in the benchmark's ``report`` environment (matplotlib is a benchmark-only
dependency); the suite calls it after writing the JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
from matplotlib.ticker import NullFormatter

from benchmarks.report import find, ideal_s, ok

OURS, THEIRS, FAILED = "#1f6feb", "#9aa4b2", "#d1242f"


def _bars(
    ax: Any, rows: list[tuple[str, float | None, bool]], xlabel: str, fmt: str = "{:.2f}"
) -> None:
    """Horizontal bars, sweeplab's in blue; a tool that failed gets a red label and no bar."""
    labels = [r[0] for r in rows][::-1]
    values = [r[1] or 0 for r in rows][::-1]
    colors = [OURS if r[2] else THEIRS for r in rows][::-1]
    bars = ax.barh(labels, values, color=colors, height=0.6)
    for bar, (_, value, _) in zip(bars, rows[::-1]):
        text = "failed / n/a" if value is None else fmt.format(value)
        ax.annotate(
            text,
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
            color=FAILED if value is None else "black",
        )
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=7)
    ax.margins(x=0.25)


def _label(r: dict[str, Any]) -> str:
    return f"{r['tool']} · {r['mode']}"


def draw(data: dict[str, Any], png: Path) -> None:
    meta, res = data["meta"], data["results"]
    fig, axes = plt.subplots(3, 2, figsize=(13, 13))
    (w0_in, w0_whole), (w1, w2), (w3, w4) = axes

    w0 = [r for r in res if r["workload"] == "W0"]
    n0 = meta["sizes"]["w0_trials"]
    _bars(
        w0_in,
        [
            (_label(r), n0 / r["in_process_s"] if ok(r) and r["in_process_s"] else None, _is(r))
            for r in w0
        ],
        "trials/s, in-process (log scale; higher is better)",
        "{:,.0f}",
    )
    w0_in.set_xscale("log")
    w0_in.xaxis.set_minor_formatter(NullFormatter())
    w0_in.set_title(f"W0 overhead: {n0:,} no-op trials")
    _bars(
        w0_whole,
        [(_label(r), r["whole_s"] if ok(r) else None, _is(r)) for r in w0],
        "seconds, whole process (log scale; lower is better)",
    )
    w0_whole.set_xscale("log")
    w0_whole.xaxis.set_minor_formatter(NullFormatter())
    w0_whole.set_title("W0: whole process, interpreter start included")

    for ax, workload, title in (
        (w1, "W1", "W1 CPU: {w1_trials} trials of ~20 ms on {w1_workers} workers"),
        (w2, "W2", "W2 waiting: {w2_trials} x sleep({w2_sleep_s}) on {w2_slots} threads"),
    ):
        rows = [r for r in res if r["workload"] == workload]
        _bars(
            ax,
            [(_label(r), r["in_process_s"] if ok(r) else None, _is(r)) for r in rows],
            "seconds, wall (lower is better)",
        )
        ideal = ideal_s(meta, workload)
        if ideal:
            ax.axvline(ideal, color="black", linestyle="--", linewidth=1)
            ax.text(
                ideal, 1.01, "ideal", fontsize=7, ha="center", transform=ax.get_xaxis_transform()
            )
        ax.set_title(title.format(**meta["sizes"]))

    targets = [t for t in data.get("targets", []) if t["target"].startswith("w3")]
    w3_rows = []
    limits = {"w3_add_s": 10, "w3_add_mib": 300, "w3_results": 2}
    for t in targets:
        if t["target"] in limits and t["value"] is not None:
            w3_rows.append((t["goal"][4:], t["value"] / limits[t["target"]], True))
    status = [r for r in res if r["workload"] == "W3" and r["mode"].startswith("status")]
    for r in status:
        w3_rows.append((f"`sweeplab status` ≤ 100 ms ({r['mode'][8:]})", _frac(r, 0.1), True))
    _bars(w3, w3_rows, "measured / target (≤ 1 meets the target)")
    w3.axvline(1, color="black", linestyle="--", linewidth=1)
    w3.set_title(f"W3 scale: add {meta['sizes']['w3_side'] ** 2:,} points, read back")

    rows = [r for r in res if r["workload"] == "W4" and ok(r) and r["whole_s"]]
    if rows:
        n = [int(r["mode"].split(" ")[0]) for r in rows]
        rate = [r["trials"] / r["whole_s"] for r in rows]
        w4.plot(n, rate, marker="o", color=OURS, label="done / wall (workers' start included)")
        drain = [
            r["trials"] / r["extra"]["drain_s"] if r["extra"].get("drain_s") else None for r in rows
        ]
        if all(drain):
            w4.plot(n, drain, marker="s", color=OURS, linestyle=":", label="while draining")
        w4.axhline(5000, color="black", linestyle="--", linewidth=1, label="target")
        w4.set_xticks(n)
        w4.set_ylim(bottom=0)
        w4.set_xlabel("workers")
        w4.set_ylabel("trials/s (claims + completions)")
        w4.legend(fontsize=7)
    else:
        r = find(res, "W4", "sweeplab")
        why = f"{r['status']}: {r['note']}" if r else "not run"
        w4.text(0.5, 0.5, f"W4 not measured\n{why[:80]}", ha="center", va="center", fontsize=8)
        w4.set_axis_off()
    w4.set_title(f"W4: N workers draining {meta['sizes']['w4_trials']:,} trials, PostgreSQL")

    fig.suptitle(
        f"sweeplab vs peers, {meta['cores']} cores, {meta['date']}"
        + (" (partial run)" if meta.get("partial") else ""),
        fontsize=12,
    )
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def _is(r: dict[str, Any]) -> bool:
    return r["tool"] == "sweeplab"


def _frac(r: dict[str, Any], limit: float) -> float | None:
    return r["whole_s"] / limit if ok(r) and r["whole_s"] else None


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m benchmarks.chart LATEST.json OUT.png")
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
