"""The bench's figures (matplotlib, Agg), drawn from results/bench/data.json; axis labels in English, so no CJK font
is needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tools.bench.load import TARGET_LABELS, TARGETS, rolling_median  # noqa: E402

COLOURS = {"gateway": "#d62728", "rest": "#1f77b4", "parse": "#2ca02c", "parse_all": "#9467bd"}


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def f1_by_intent(understanding: Dict[str, Any], path: Path) -> str:
    rasa = understanding["rasa"]["per_intent"]
    models = understanding["baselines"]["models"]
    intents = sorted(rasa, key=lambda k: (rasa[k]["f1"], k))
    series = [("Rasa model", [rasa[i]["f1"] for i in intents], "#d62728")]
    colours = ["#1f77b4", "#9467bd", "#7f7f7f"]
    series += [
        (m["name"], [m["per_intent"].get(i, 0.0) for i in intents], c) for m, c in zip(models, colours, strict=False)
    ]
    height = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(10, max(6, 0.42 * len(intents))))
    for k, (name, values, colour) in enumerate(series):
        ax.barh([y + k * height for y in range(len(intents))], values, height=height, label=name, color=colour)
    ax.set_yticks([y + 0.4 - height / 2 for y in range(len(intents))])
    ax.set_yticklabels(intents, fontsize=8)
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("F1 on the held-out sentences (tests/nlu)")
    ax.set_ylim(-0.5, len(intents))
    ax.set_title("Per-intent F1: the model vs TF-IDF and BM25 baselines", pad=48)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def throughput(cells: List[Dict[str, Any]], path: Path) -> str:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for target in TARGETS:
        rows = sorted((c for c in cells if c["target"] == target), key=lambda c: c["clients"])
        xs, ys = [c["clients"] for c in rows], [c["messages_per_s"] for c in rows]
        ax.plot(xs, ys, marker="o", color=COLOURS[target], label=TARGET_LABELS[target])
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(f"{y:.0f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("answered messages / s")
    ax.set_xticks(sorted({c["clients"] for c in cells}))
    ax.set_ylim(bottom=0)
    ax.set_title("Throughput by path (same run, same messages)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def latency(cells: List[Dict[str, Any]], path: Path) -> str:
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharey=True)
    for ax, p in zip(axes, ("p50_ms", "p95_ms", "p99_ms"), strict=True):
        for target in TARGETS:
            rows = sorted((c for c in cells if c["target"] == target), key=lambda c: c["clients"])
            ax.plot(
                [c["clients"] for c in rows],
                [c[p] for c in rows],
                marker="o",
                color=COLOURS[target],
                label=TARGET_LABELS[target],
            )
        ax.set_title(p.replace("_ms", ""))
        ax.set_xlabel("concurrent clients")
        ax.set_xticks(sorted({c["clients"] for c in cells}))
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("latency (ms, log scale)")
    axes[0].legend(fontsize=7)
    fig.suptitle("Latency percentiles by path")
    return _save(fig, path)


def conversation_length(length: Dict[str, Any], path: Path) -> str:
    values = length["latencies_ms"]
    xs = list(range(1, len(values) + 1))
    window = length["window"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.scatter(xs, values, s=6, alpha=0.45, color="#1f77b4", label="one message of the long conversation")
    ax.plot(xs, rolling_median(values, 25), color="#d62728", label="its rolling median (25 messages)")
    control = length.get("control_ms")
    if control:
        ax.plot(xs, rolling_median(control, 25), color="#7f7f7f", linewidth=1,
                label="rolling median of the control (the same message, a new conversation)")  # fmt: skip
    ax.hlines(
        length["median_first_ms"],
        1,
        window,
        colors="black",
        linestyles="--",
        label=f"median of the first {window}: {length['median_first_ms']:.0f} ms",
    )
    ax.hlines(
        length["median_last_ms"],
        len(values) - window + 1,
        len(values),
        colors="#ff7f0e",
        linestyles="--",
        label=f"median of the last {window}: {length['median_last_ms']:.0f} ms",
    )
    ax.set_xlabel("message index in one conversation")
    ax.set_ylabel("latency through the gateway (ms)")
    top = sorted(values)[int(0.98 * (len(values) - 1))] if values else 1
    ax.set_ylim(0, top * 1.4)
    ax.set_title(f"Latency against conversation length: growth {length['growth']:.2f}x")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def memory(snapshots: Dict[str, Dict[str, float]], path: Path) -> str:
    phases = list(snapshots)
    processes = sorted({name for s in snapshots.values() for name in s})
    width = 0.8 / max(1, len(phases))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, phase in enumerate(phases):
        values = [snapshots[phase].get(name, 0.0) for name in processes]
        bars = ax.bar([x + k * width for x in range(len(processes))], values, width=width, label=phase)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(processes))])
    ax.set_xticklabels(processes)
    ax.set_ylabel("RSS (MB)")
    ax.set_title("Resident memory of every process")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
