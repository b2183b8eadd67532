"""Latency history: the comparison across runs that catches a regression.

Every benchmark record already lands in an append-only JSONL store. A series is the records of
one (model sha256, device, runtime, threads) in time order: the same model on the same board
through the same interpreter, so only the software or the board changed between points. The
delegate is deliberately not in the key: a delegate that silently stops loading (XNNPACK or the
Edge TPU) is exactly the kind of slowdown the history must catch.
The newest p50 of a series is compared with the points before it (at most WINDOW of them):

    noise     = median(|p_i - p_(i-1)|) / 0.954    over consecutive previous p50s
    threshold = median(previous) + max(K * noise, FLOOR * median(previous))
    regression when newest p50 > threshold

Why this threshold: the history measures its own run-to-run noise, so a board with jittery
timings (a Pi on a busy network, a thermally limited SoC) gets a wide band and a quiet board a
narrow one; no per-device constant to tune. The noise is the median absolute difference between
consecutive runs (the robust first-difference estimator of change-point detection): for normal
noise of standard deviation s, a difference has standard deviation s*sqrt(2) and its median
absolute value is 0.6745 * sqrt(2) * s = 0.954 s, hence the divisor. Unlike the spread around
the median (MAD), it is not inflated by an earlier level shift (last month's upgrade that made
the model faster), and unlike a standard deviation one outlier run barely moves it; and it does
see heavy-tailed noise (contention that makes every third run twice as slow), which MAD around
the median under-reads when fewer than half the runs are slow. K = 4 puts a normal false alarm
at about 3 in 100,000 runs; real latency noise has a heavier right tail than a normal, hence 4
rather than the textbook 3. FLOOR (2%) keeps a history that happens to be flat (noise 0, e.g. a
coarse timer) from alarming on a meaningless 0.1% step. A series needs MIN_HISTORY earlier
points before it can alarm, and only the last WINDOW of them count (old boards, old baselines).

Emulated records (no `latency_ms`) and errors are not latencies and never enter a series.
A record whose fields the detector reads are missing or of the wrong type (a hand edit, another
tool's JSONL) is an error naming its file and line, never a traceback and never a silent skip;
records cut short by a crash are skipped and named (`History.torn`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Iterable
from pathlib import Path

from edgequant.bench import compare
from edgequant.bench.store import ResultsStore
from edgequant.errors import UserError

K = 4.0
FLOOR = 0.02
MIN_HISTORY = 5
WINDOW = 30
DIFF_TO_SIGMA = 0.9539  # sqrt(2) * Phi^-1(3/4): median |difference| of normal noise / sigma


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The newest point of one series against the history before it."""

    device: str
    model: str
    model_sha256: str
    runtime: str
    threads: int | None
    delegate: str | None  # of the newest point
    p50s: tuple[float, ...]  # the whole series, oldest first (ms)
    times: tuple[float | None, ...]  # unix time of each point (None for old records)
    baseline_ms: float | None  # median of the previous points
    noise_ms: float | None  # run-to-run noise of the previous points (sigma estimate)
    threshold_ms: float | None
    status: str  # "regression", "ok", "faster", or "too short"

    @property
    def latest_ms(self) -> float:
        return self.p50s[-1]

    @property
    def change(self) -> float | None:
        return self.latest_ms / self.baseline_ms - 1 if self.baseline_ms else None


def series_key(record: dict) -> tuple:
    return (
        record.get("model_sha256"),
        record.get("device", "host"),
        record.get("runtime"),
        record.get("num_threads"),
    )


@dataclasses.dataclass(frozen=True)
class History:
    records: list[dict]  # latency records in time order
    emulated: int  # emulated records left out (not latencies)
    torn: list[str]  # "FILE line N" of each record cut by a crash (skipped)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_record(r: dict, where: str) -> None:
    """Refuses a record whose fields the detector reads are missing or of the wrong type."""

    def bad(what: str) -> UserError:
        return UserError(f"{where}: not a latency record: {what}")

    if "error" in r:
        return
    if "latency_ms" not in r:
        raise bad("it has neither latency_ms nor error")
    stats = r["latency_ms"]
    if stats is None:
        if not r.get("emulated"):
            raise bad("latency_ms is null but the record is not emulated")
        return
    if not isinstance(stats, dict) or not _number(stats.get("p50")):
        raise bad(f"latency_ms.p50 must be a number of milliseconds, got {stats!r:.60}")
    if not math.isfinite(stats["p50"]) or stats["p50"] <= 0 or stats.get("n", 1) == 0:
        raise bad(
            f"p50 {stats['p50']} from {stats.get('n', '?')} measured invokes is no latency "
            "(a run that measured nothing; delete the line)"
        )
    for name in ("model_sha256", "runtime"):
        if not isinstance(r.get(name), str):
            raise bad(f"{name} must be a string, got {r.get(name)!r:.60}")
    if not isinstance(r.get("device", "host"), str):
        raise bad(f"device must be a string, got {r.get('device')!r:.60}")
    threads = r.get("num_threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)):
        raise bad(f"num_threads must be an integer or null, got {threads!r:.60}")
    stamp = r.get("timestamp")
    if stamp is not None and not (_number(stamp) and math.isfinite(stamp)):
        raise bad(f"timestamp must be unix seconds or null, got {stamp!r:.60}")


def read(directory: str | Path) -> History:
    """Every *.jsonl under directory, checked record by record, latencies in time order.
    Records without a timestamp (older runs) keep their file order, first."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"history directory not found: {directory}")
    records, emulated, torn = [], 0, []
    for path in sorted(directory.rglob("*.jsonl")):
        contents = ResultsStore(path).read()
        torn += [f"{path} line {n}" for n in contents.torn_lines]
        for r, n in zip(contents.records, contents.lines, strict=True):
            check_record(r, f"{path} line {n}")
            if compare.is_latency(r):
                records.append(r)
            elif "error" not in r:
                emulated += bool(r.get("emulated"))
    records.sort(key=lambda r: r.get("timestamp") or 0.0)
    return History(records, emulated, torn)


def load(directory: str | Path) -> tuple[list[dict], int]:
    """(latency records in time order, number of emulated records left out): `read` without
    the torn-line list."""
    h = read(directory)
    return h.records, h.emulated


def judge(p50s: list[float]) -> tuple[float | None, float | None, float | None, str]:
    """(baseline, noise, threshold, status) of the last p50 against the ones before it."""
    history = p50s[:-1][-WINDOW:]
    if len(history) < MIN_HISTORY:
        return None, None, None, "too short"
    baseline = statistics.median(history)
    noise = statistics.median(abs(b - a) for a, b in itertools.pairwise(history)) / DIFF_TO_SIGMA
    margin = max(K * noise, FLOOR * baseline)
    threshold = baseline + margin
    if p50s[-1] > threshold:
        return baseline, noise, threshold, "regression"
    return baseline, noise, threshold, "faster" if p50s[-1] < baseline - margin else "ok"


def detect(records: Iterable[dict]) -> list[Verdict]:
    """One verdict per series, in the order series first appear."""
    series: dict[tuple, list[dict]] = {}
    for r in records:
        series.setdefault(series_key(r), []).append(r)
    out = []
    for (sha, device, runtime, threads), rs in series.items():
        p50s = [r["latency_ms"]["p50"] for r in rs]
        baseline, noise, threshold, status = judge(p50s)
        out.append(
            Verdict(
                device,
                rs[-1].get("model", "?"),
                sha,
                f"{runtime} {rs[-1].get('runtime_version', '')}".strip(),
                threads,
                rs[-1].get("delegate"),
                tuple(p50s),
                tuple(r.get("timestamp") for r in rs),
                baseline,
                noise,
                threshold,
                status,
            )
        )
    return out


def trend_table(verdicts: list[Verdict], recent: int = 6) -> str:
    def ms(x: float | None) -> str:
        return "" if x is None else f"{x:.3f}"

    lines = [
        "| device | model | runtime | threads | runs | median ms | noise ms | threshold ms "
        "| recent p50 ms (oldest first) | latest ms | change | verdict |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for v in verdicts:
        change = "" if v.change is None else f"{100 * v.change:+.1f}%"
        tail = " ".join(f"{x:.3g}" for x in v.p50s[-recent - 1 : -1])
        lines.append(
            f"| {v.device} | {v.model} | {v.runtime} | {v.threads or ''} | {len(v.p50s)} | "
            f"{ms(v.baseline_ms)} | {ms(v.noise_ms)} | {ms(v.threshold_ms)} | {tail} | "
            f"{v.latest_ms:.3f} | {change} | {v.status.upper() if v.status == 'regression' else v.status} |"
        )
    return "\n".join(lines)


def plot(verdicts: list[Verdict], path: str | Path) -> Path:
    """p50 over time, one panel per model, one line per device/runtime/threads; the threshold
    of each series' newest point is drawn, and a regression is marked red."""
    import datetime

    from edgequant.report import plots

    plt = plots.pyplot()

    models = sorted({v.model for v in verdicts})
    fig, axes = plt.subplots(len(models), 1, figsize=(8, 3.2 * max(1, len(models))), squeeze=False)
    for ax, model in zip(axes[:, 0], models, strict=True):
        for v in (v for v in verdicts if v.model == model):
            if all(t is not None for t in v.times):
                xs = [datetime.datetime.fromtimestamp(t, datetime.UTC) for t in v.times]
            else:
                xs = list(range(len(v.p50s)))
            label = f"{v.device} {v.runtime}" + (f" t={v.threads}" if v.threads else "")
            (line,) = ax.plot(xs, v.p50s, marker="o", ms=3, label=label)
            if v.threshold_ms is not None:
                ax.hlines(
                    v.threshold_ms, xs[0], xs[-1], colors=line.get_color(), linestyles=":", lw=1
                )
            if v.status == "regression":
                ax.plot([xs[-1]], [v.p50s[-1]], "x", color="red", ms=10, mew=2)
        ax.set_title(f"{model}: p50 per run (dotted: threshold; red x: regression)", fontsize=9)
        ax.set_ylabel("p50 [ms]")
        ax.legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    return plots.save(fig, path, dpi=100)
