"""Plots people read without explanation: titled, units on axes, every point labelled."""

from __future__ import annotations

from pathlib import Path

from edgequant import atomic


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (servers and CI have no display), imported
    on first use: most runs of the library draw nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path, dpi: int = 110) -> Path:
    """Writes the figure whole or not at all (the format from the suffix) and frees it."""
    path = Path(path)
    with atomic.target(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    pyplot().close(fig)
    return path


def accuracy(entry: dict) -> float | None:
    """Top-1 of a deploy.json variant or float entry (`metrics.top1`); None when unlabelled."""
    return (entry.get("metrics") or {}).get("top1")


def tradeoff(results: dict, path: str | Path) -> Path:
    """Accuracy vs p50 latency per variant; marker area proportional to model size."""
    plt = pyplot()
    rows = [
        {**v, "accuracy": accuracy(v)}
        for v in results["variants"]
        if accuracy(v) is not None and v.get("latency_ms")
    ]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    if rows:
        biggest = max(v["size_bytes"] for v in rows)
        # Variants that land on the same spot (e.g. int8 and uint8) share one label, so the
        # names stay readable instead of printing over each other.
        groups: list[tuple[float, float, list[dict]]] = []
        for v in sorted(rows, key=lambda v: (v["accuracy"], v["latency_ms"]["p50"])):
            x, y = v["latency_ms"]["p50"], 100 * v["accuracy"]
            last = groups[-1] if groups else None
            if last and abs(last[1] - y) < 0.05 and abs(x / last[0] - 1) < 0.1:
                last[2].append(v)
            else:
                groups.append((x, y, [v]))
        for i, (x, y, members) in enumerate(groups):
            for v in members:
                area = 60 + 900 * v["size_bytes"] / biggest
                ax.scatter(x, y, s=area, alpha=0.45, edgecolors="black")
            label = "\n".join(f"{v['name']} ({v['size_bytes'] / 1024:.0f} KB)" for v in members)
            offset = (10, 10) if i % 2 else (10, -12 * len(members))
            ax.annotate(label, (x, y), textcoords="offset points", xytext=offset, fontsize=8)
        ax.set_xscale("log")
        ax.margins(x=0.25, y=0.2)
    float_accuracy = accuracy(results.get("float") or {})
    if float_accuracy is not None:
        ax.axhline(
            100 * float_accuracy, color="gray", linestyle="--", linewidth=1, label="float model"
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
    return save(fig, path, dpi=120)
