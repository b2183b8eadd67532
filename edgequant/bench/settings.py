"""How a latency is measured: the one home of the benchmark defaults.

`Settings()` holds every default (counts, times, seed, parity bound). The configs'
`bench` blocks, `tools/benchmark.py`'s flags, the pipeline's host latency and the fleet read it
from here. `device_runner.py` is uploaded alone to boards (Python 3.7, no edgequant import), so
it keeps the same values as literals in `device_runner.DEFAULT_SETTINGS`; a test pins them equal.

The method follows TFLite's benchmark_model (../shared/research/bench.md, section 1.3): warm-up
until `warmup_runs` AND `warmup_min_secs`, then measure until `num_runs` AND `min_secs`,
capped by `max_secs`. benchmark_model's own defaults are 50 runs / 1 s and 1 warm-up run /
0.5 s; edgequant measures longer (100 runs / 2 s) so p99 rests on at least 100 samples, and
warms up with 5 runs, since the 0.5 s bound dominates for millisecond models anyway. There used
to be two warm-up counts (5 here, 10 in the study config); there is one now.
"""

from __future__ import annotations

import dataclasses
import types


@dataclasses.dataclass(frozen=True)
class Settings:
    """How to measure; part of the results-store key, so changing one re-measures."""

    runtime: str = "auto"
    threads: int | None = None  # None: the runtime's own choice
    xnnpack: bool = True
    num_runs: int = 100
    min_secs: float = 2.0
    max_secs: float = 60.0
    warmup_runs: int = 5
    warmup_min_secs: float = 0.5
    seed: int = 0
    parity_lsb: float | None = 8.0  # None: no output-parity check against the host

    def __post_init__(self):
        bad = problems(self)
        if bad:
            raise ValueError("bad benchmark setting(s): " + "; ".join(bad))

    def runner_args(self) -> list[str]:
        """The device runner's command-line arguments for these settings."""
        a = [
            "--runtime",
            self.runtime,
            "--num_runs",
            str(self.num_runs),
            "--min_secs",
            str(self.min_secs),
            "--max_secs",
            str(self.max_secs),
            "--warmup_runs",
            str(self.warmup_runs),
            "--warmup_min_secs",
            str(self.warmup_min_secs),
            "--seed",
            str(self.seed),
        ]
        if self.threads:
            a += ["--threads", str(self.threads)]
        if not self.xnnpack:
            a.append("--no_xnnpack")
        if self.parity_lsb is not None:
            a += ["--parity_lsb", str(self.parity_lsb)]
        return a

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def problems(s: Settings | types.SimpleNamespace) -> list[str]:
    """Every setting that cannot describe a measurement, each naming its value and the valid
    range. Checked here, where every Settings is made (flags, configs, the fleet), with the
    rules of `device_runner.setting_problems` (their one home: the runner on a board checks
    its own command line with them)."""
    from edgequant.bench.device_runner import setting_problems

    return setting_problems({f.name: getattr(s, f.name) for f in dataclasses.fields(Settings)})


DEFAULT = Settings()

# The fields a config's `bench` block carries (configs/base.py copies them from DEFAULT).
CONFIG_FIELDS = ("num_runs", "min_secs", "max_secs", "warmup_runs", "warmup_min_secs")


def config_problems(bench_cfg) -> list[str]:
    """`problems` of a config's `bench` block (its counts, times and every thread count), each
    named by its config key: config_check runs it before any work, with the same rules as
    every Settings made later."""
    fields = {k: bench_cfg.get(k, getattr(DEFAULT, k)) for k in CONFIG_FIELDS}
    threads = tuple(bench_cfg.get("threads", ()) or ()) or (None,)
    out: list[str] = []
    for t in threads:
        # problems() reads attributes only: a namespace lets it judge values Settings refuses
        found = problems(types.SimpleNamespace(**{**DEFAULT.to_dict(), **fields, "threads": t}))
        out += [f"bench.{p}" for p in found if f"bench.{p}" not in out]
    return out


def from_config(bench_cfg, **overrides) -> Settings:
    """Settings from a config's `bench` block: its counts and times over DEFAULT, then
    `overrides` (runtime, threads, parity_lsb, ...). A key the block lacks keeps the default."""
    fields = {k: bench_cfg.get(k, getattr(DEFAULT, k)) for k in CONFIG_FIELDS}
    return dataclasses.replace(DEFAULT, **fields, **overrides)
