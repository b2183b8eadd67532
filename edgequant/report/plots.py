"""Plots people read without explanation: titled, units on axes, every point labelled."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def tradeoff(results: dict, path: str | Path) -> Path:
    """Accuracy vs p50 latency per variant; marker area proportional to model size."""
    rows = [v for v in results["variants"] if v.get("accuracy") is not None and v.get("latency_ms")]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    if rows:
        sizes = [v["size_bytes"] for v in rows]
        biggest = max(sizes)
        for v in rows:
            x, y = v["latency_ms"]["p50"], 100 * v["accuracy"]
            area = 60 + 900 * v["size_bytes"] / biggest
            ax.scatter(x, y, s=area, alpha=0.55, edgecolors="black")
            ax.annotate(
                f"{v['name']}\n{v['size_bytes'] / 1024:.0f} KB",
                (x, y),
                textcoords="offset points",
                xytext=(8, 4),
                fontsize=8,
            )
    if results.get("float", {}).get("accuracy") is not None:
        ax.axhline(
            100 * results["float"]["accuracy"],
            color="gray",
            linestyle="--",
            linewidth=1,
            label="float Keras model",
        )
        ax.legend(loc="lower right", fontsize=8)
    threads = rows[0]["latency_ms"].get("threads") if rows else None
    ax.set_title("Accuracy vs latency per quantized variant (marker area = model size)")
    ax.set_xlabel(
        f"p50 latency per image on host CPU [ms]{f', {threads} thread(s)' if threads else ''}"
    )
    ax.set_ylabel("test accuracy [%]")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
