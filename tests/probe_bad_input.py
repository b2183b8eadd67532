"""Runs every binary over the bad-input classes a hostile but realistic new user hits, and counts
what breaks the promise "one `error:` line, the right non-zero exit, nothing lost".

  python tests/probe_bad_input.py [--jobs=2] [--output_json=runs/probe.json] [--only=flags]
Each case is a real subprocess with real files (corrupt archives, a file where a folder should
be, a read-only or full tmpfs mounted in a private namespace, real SIGINT/SIGTERM). A case is
clean when the exit status is the expected one, stderr has no traceback, and (for an error) has
exactly one `error:` line containing the expected words; run folders are checked with
`rundir.verify` (every listed file matches its sha256, nothing stale, nothing half-swapped).
Exit status: 0 every case clean, 1 otherwise.
"""

from edgequant import cli, workspace

cli.quiet_tensorflow()

import dataclasses  # noqa: E402
import glob  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent import futures  # noqa: E402
from pathlib import Path  # noqa: E402

from absl import flags  # noqa: E402

_JOBS = flags.DEFINE_integer("jobs", 2, "Cases run at the same time.")
_OUT = flags.DEFINE_string("output_json", None, "Write every case and its outcome here.")
_ONLY = flags.DEFINE_list("only", [], "Run only these classes (default: all).")
_KEEP = flags.DEFINE_bool("keep", False, "Keep the scratch folder.")
cli.define_verbose_flag()

REPO = workspace.ROOT
TEST = "--config=configs/test.py"
AUTOQUANT = "--config=configs/mnist_autoquant.py"
FAST = [  # the smallest real pipeline: one epoch, no AEQ, no benchmark
    TEST,
    "--config.quantize.aeq_recipes=()",
    "--config.bench.enabled=False",
    "--config.edgetpu.enabled=False",
]


@dataclasses.dataclass
class Case:
    klass: str
    tool: str
    args: list[str]
    exit: int | tuple[int, ...] = 2  # expected exit status
    needles: tuple[str, ...] = ()  # words the error line must hold
    cwd: str | None = None
    mount: str | None = None  # tmpfs options for a private mount at <scratch>/mnt
    signal_after: tuple[str, float] | None = None  # (path that must exist, extra seconds)
    signum: int = signal.SIGTERM
    verify: str | None = None  # a run folder that must be consistent afterwards
    one_line: bool = True  # False: the failure is a structured record, not an `error:` line
    outcome: dict = dataclasses.field(default_factory=dict)


def _run(case: Case, scratch: Path) -> dict:
    script = REPO / f"{case.tool}.py" if "/" in case.tool else REPO / "tools" / f"{case.tool}.py"
    argv = [sys.executable, str(script), *case.args]
    if case.mount:
        mnt = scratch / "mnt"
        mnt.mkdir(exist_ok=True)
        argv = [
            "unshare",
            "-rm",
            "sh",
            "-c",
            f'mount -t tmpfs -o {case.mount} tmpfs "{mnt}" && exec "$@"',
            "sh",
            *argv,
        ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=case.cwd or REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if case.signal_after:
        path, extra = case.signal_after
        while not glob.glob(path) and proc.poll() is None:
            time.sleep(0.005)
        time.sleep(extra)
        if proc.poll() is None:
            proc.send_signal(case.signum)
    try:
        out, err = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return {
        "exit": proc.returncode,
        "stderr": err[-3000:],
        "seconds": round(time.monotonic() - start, 1),
    }


def _judge(case: Case, r: dict) -> dict:
    err = r["stderr"]
    lines = [ln for ln in err.splitlines() if ln.startswith(("error:", "FATAL"))]
    expected = case.exit if isinstance(case.exit, tuple) else (case.exit,)
    problems = []
    if "Traceback" in err:
        problems.append("traceback")
    if r["exit"] not in expected:
        problems.append("silent" if r["exit"] == 0 else "wrong exit")
    if 0 not in expected and case.one_line and len(lines) != 1:
        problems.append(f"{len(lines)} error lines")
    if lines and not all(n in lines[0] for n in case.needles):
        problems.append("error line misses " + repr(case.needles))
    if case.verify:
        bad = __import__("edgequant.rundir", fromlist=["verify"]).verify(case.verify)
        if bad:
            problems.append("inconsistent: " + "; ".join(bad[:3]))
    return {**r, "error_line": lines[0] if lines else "", "problems": problems}


def _corrupt(data: bytes) -> bytes:
    b = bytearray(data)
    for i in range(40, len(b) - 40, 7):
        b[i] ^= 0x5A
    return bytes(b)


def _fixtures(scratch: Path) -> dict[str, str]:
    """A finished tiny run (float.keras, .tflite files) and damaged copies of real files."""
    import numpy as np

    from edgequant.datasets import idx, mnist

    run = scratch / "run"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "pipeline.py"), *FAST, f"--workdir={run}"]
        + ["--config.quantize.recipes=fp32,int8,uint8,float16"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if proc.returncode:
        raise RuntimeError(f"the fixture run failed: {proc.stderr[-2000:]}")
    f = {"run": str(run), "keras": str(run / "float.keras"), "uint8": str(run / "uint8.tflite")}
    f["fp32"] = str(run / "fp32.tflite")
    d = mnist.read(download=False, seed=0)
    for kind in ("gz", "npz"):
        folder = scratch / f"data_{kind}"
        folder.mkdir()
        if kind == "gz":
            name = "t10k-images-idx3-ubyte.gz"
            idx.write_idx(folder / name, d.test.x[:300])
            idx.write_idx(folder / "t10k-labels-idx1-ubyte.gz", d.test.y[:300].astype(np.uint8))
        else:
            name = "mnist.npz"
            np.savez_compressed(
                folder / name,
                x_train=d.train.x,
                y_train=d.train.y,
                x_test=d.test.x[:300],
                y_test=d.test.y[:300],
            )
        (folder / name).write_bytes(_corrupt((folder / name).read_bytes()))
        f[f"bad_{kind}"] = str(folder)
    (scratch / "afile").write_text("a file, not a folder")
    f["afile"] = str(scratch / "afile")
    (scratch / "junk.tflite").write_bytes(b"not a flatbuffer at all" * 10)
    f["junk_tflite"] = str(scratch / "junk.tflite")
    (scratch / "junk.keras").write_bytes(b"PK not a zip")
    f["junk_keras"] = str(scratch / "junk.keras")
    (scratch / "empty.tflite").write_bytes(b"")
    f["empty"] = str(scratch / "empty.tflite")
    (scratch / "dir.tflite").mkdir()
    f["dir_model"] = str(scratch / "dir.tflite")
    (scratch / "truncated.tflite").write_bytes(Path(f["uint8"]).read_bytes()[:400])
    f["truncated"] = str(scratch / "truncated.tflite")
    (scratch / "broken.py").write_text("def get_config(:\n")
    f["syntax"] = str(scratch / "broken.py")
    (scratch / "raises.py").write_text(
        "def get_config():\n    raise ValueError('no such option')\n"
    )
    f["raises"] = str(scratch / "raises.py")
    (scratch / "mine").mkdir()
    (scratch / "mine" / "thesis.tex").write_text("precious")
    f["mine"] = str(scratch / "mine")
    return f


def cases(f: dict[str, str], scratch: Path) -> list[Case]:
    s = str(scratch)
    mnt = f"{s}/mnt"
    out: list[Case] = []
    add = out.append
    config_tools = {
        "pipeline": [f"--workdir={s}/w_pipeline"],
        "train": [f"--workdir={s}/w_train"],
        "autoquant": [f"--workdir={s}/w_autoquant"],
        "quantize": [f"--model={f['keras']}", "--recipe=int8", f"--out_dir={s}/q"],
    }
    model_tools = {
        "evaluate": [],
        "edgetpu_check": [],
        "compile_edgetpu": [f"--out_dir={s}/c"],
        "benchmark": ["--num_runs=3", "--min_secs=0"],
        "benchmarks/eval_throughput": ["--num_images=50", "--repeats=1"],
    }
    # --- absl flag parsing: one `error: bad flag` line, exit 2
    every = [*config_tools, *model_tools, "benchmarks/device_overhead"]
    for tool in every:
        add(Case("flags", tool, ["--no_such_flag=1"], needles=("no_such_flag",)))
    for tool in ("pipeline", "train", "autoquant", "evaluate", "edgetpu_check", "compile_edgetpu"):
        add(Case("flags", tool, [], needles=("--",)))  # a required flag missing
    add(Case("flags", "evaluate", ["--model=m", "--batch_size=ten"], needles=("batch_size",)))
    add(Case("flags", "evaluate", ["--model=m", "--dataset=cifar"], needles=("dataset",)))
    add(Case("flags", "edgetpu_check", ["--model=m", "--io_dtype=float"], needles=("io_dtype",)))
    add(Case("flags", "benchmark", ["--model=m", "--runtime=onnx"], needles=("runtime",)))
    add(Case("flags", "benchmark", ["--model=m", "--threads=x"], needles=("threads",)))
    add(Case("flags", "compile_edgetpu", ["--model=m", "--timeout_sec=1.5"], needles=("timeout",)))
    add(Case("flags", "pipeline", [TEST, f"--workdir={s}/w", "--config.train.epochs=abc"]))
    # --- config files and keys
    for tool, rest in config_tools.items():
        add(Case("config", tool, ["--config=configs/nope.py", *rest], needles=("nope.py",)))
        add(Case("config", tool, [f"--config={f['syntax']}", *rest], needles=("broken.py",)))
        add(Case("config", tool, [f"--config={f['raises']}", *rest], needles=("no such option",)))
        add(Case("config", tool, [TEST, "--config.train.epohcs=2", *rest], needles=("epohcs",)))
    add(Case("config", "autoquant", [TEST, f"--workdir={s}/w_aq"], needles=("autoquant block",)))
    # --- invalid values, rejected before any training
    for key, value, needle in [
        ("train.batch_size", "0", "train.batch_size"),
        ("train.epochs", "-1", "train.epochs"),
        ("quantize.recipes", "fp32,int3", "'int3'"),
        ("quantize.weights", "per_row", "'per_row'"),
        ("quantize.calibration_size", "0", "calibration_size"),
        ("bench.threads", "(-1,)", "bench.threads"),
        ("bench.devices", "('no-such-board',)", "no-such-board"),
        ("evaluate.batch_size", "0", "evaluate.batch_size"),
        ("model.name", "resnet", "'resnet'"),
        ("distribute", "tpu", "'tpu'"),
    ]:
        for tool in ("pipeline", "train") if key.startswith(("train", "model")) else ("pipeline",):
            args = [TEST, f"--workdir={s}/w_{tool}", f"--config.{key}={value}"]
            add(Case("values", tool, args, needles=(needle,)))
    add(
        Case(
            "values",
            "quantize",
            [TEST, f"--model={f['keras']}", "--recipe=int3"],
            needles=("int3",),
        )
    )
    # --- models: missing, empty, a folder, not a model, truncated
    for tool, rest in model_tools.items():
        for name in ("missing", "empty", "dir_model", "junk_tflite", "truncated"):
            path = f"{s}/missing.tflite" if name == "missing" else f[name]
            # benchmark records a model that fails to run as a result (exit 1), not a crash
            record = tool == "benchmark" and name not in ("missing", "dir_model")
            add(
                Case(
                    "models",
                    tool,
                    [f"--model={path}", *rest],
                    exit=1 if record else 2,
                    one_line=not record,
                )
            )
    for name in ("junk_keras", "missing"):
        path = f"{s}/missing.keras" if name == "missing" else f[name]
        add(Case("models", "quantize", [f"--model={path}", "--recipe=fp32", f"--out_dir={s}/q"]))
        add(Case("models", "evaluate", [f"--model={path}"]))
    # --- data: corrupt .gz and mnist.npz
    for kind, needle in (("gz", "t10k-images-idx3-ubyte.gz"), ("npz", "mnist.npz")):
        add(
            Case(
                "data",
                "evaluate",
                [f"--model={f['uint8']}", f"--data_dir={f['bad_' + kind]}"],
                needles=(needle,),
            )
        )
        for tool in ("pipeline", "train"):
            args = [TEST, f"--workdir={s}/w_{tool}", f"--config.data.dir={f['bad_' + kind]}"]
            add(Case("data", tool, args, needles=(needle,)))
    # --- paths: a file where a folder goes, a folder of the user's own files, read-only, full
    for tool, config in (("pipeline", TEST), ("train", TEST), ("autoquant", AUTOQUANT)):
        add(Case("paths", tool, [config, f"--workdir={f['afile']}"], needles=("afile",)))
    add(Case("paths", "pipeline", [TEST, f"--workdir={f['mine']}"], needles=("not an edgequant",)))
    q = [f"--model={f['keras']}", "--recipe=fp32"]
    add(Case("paths", "quantize", [*q, f"--out_dir={f['afile']}"], needles=("afile",)))
    add(
        Case(
            "paths",
            "evaluate",
            [f"--model={f['uint8']}", f"--output_json={f['afile']}/x.json"],
            needles=("afile",),
        )
    )
    add(
        Case(
            "paths",
            "benchmark",
            [f"--model={f['fp32']}", "--num_runs=2", "--min_secs=0"]
            + [f"--output_json={f['afile']}/x.json"],
        )
    )
    full_disks = (
        ("pipeline", [*FAST, f"--workdir={mnt}/run"], "ro,size=1m", "Read-only file system"),
        ("train", [TEST, f"--workdir={mnt}/run"], "ro,size=1m", "Read-only file system"),
        ("quantize", [*q, f"--out_dir={mnt}"], "size=16k", "No space left on device"),
        ("pipeline", [*FAST, f"--workdir={mnt}/run"], "size=200k", "No space left on device"),
    )
    for tool, args, mount, needle in full_disks:
        add(Case("paths", tool, args, mount=mount, needles=(needle,)))
    # --- another current directory: defaults come from the project
    add(Case("cwd", "quantize", q + [f"--out_dir={s}/q_cwd"], exit=0, cwd="/"))
    add(
        Case(
            "cwd",
            "pipeline",
            [
                f"--config={REPO}/configs/test.py",
                f"--workdir={s}/w_cwd",
                "--config.train.batch_size=0",
            ],
            cwd="/",
            needles=("batch_size",),
        )
    )
    # --- signals: one line saying what was kept, 130 / 143
    w = f"{s}/w_sig"
    for signum, workdir, moment in (
        (signal.SIGINT, f"{w}_a", (s, 2.0)),  # while TensorFlow loads
        (signal.SIGTERM, f"{w}_b", (f"{w}_b.staging-*", 0.0)),  # loading data
        (signal.SIGINT, f"{w}_c", (f"{w}_c.staging-*/tensorboard", 0.2)),  # training
    ):
        add(
            Case(
                "signals",
                "pipeline",
                [*FAST, f"--workdir={workdir}"],
                exit=128 + signum,
                signum=signum,
                signal_after=moment,
                needles=("interrupted by",),
            )
        )
    add(
        Case(
            "signals",
            "train",
            [TEST, f"--workdir={w}_t", "--config.train.epochs=40"],
            exit=130,
            signum=signal.SIGINT,
            signal_after=(f"{w}_t/tensorboard", 0.5),
            needles=("interrupted by SIGINT",),
        )
    )
    add(
        Case(
            "signals",
            "benchmark",
            [f"--model={f['fp32']}", "--min_secs=60", "--num_runs=10"],
            exit=143,
            signal_after=(s, 8.0),
            needles=("interrupted by SIGTERM",),
        )
    )
    # --- consistency: a re-run with fewer recipes, then a re-run killed at model save
    run = f["run"]
    add(
        Case(
            "consistency",
            "pipeline",
            [*FAST, f"--workdir={run}", "--config.quantize.recipes=fp32"],
            exit=0,
            verify=run,
        )
    )
    for moment in (".float.tmp-*.keras", "float.keras", "fp32.tflite", "deploy.json"):
        add(
            Case(
                "consistency",
                "pipeline",
                [*FAST, f"--workdir={run}", "--config.quantize.recipes=fp32,int8"],
                exit=(143, 0) if moment == "deploy.json" else 143,  # may finish first
                signal_after=(f"{run}.staging-*/{moment}", 0.0),
                verify=run,
                needles=("still holds the previous complete run",),
            )
        )
    return out


def _needs_mount(case: Case) -> bool:
    return case.mount is not None


def main(argv):
    scratch = Path(tempfile.mkdtemp(prefix="eq-probe-"))
    try:
        print(f"preparing fixtures in {scratch} ...", flush=True)
        fx = _fixtures(scratch)
        all_cases = [c for c in cases(fx, scratch) if not _ONLY.value or c.klass in _ONLY.value]
        can_mount = bool(shutil.which("unshare")) and (
            subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0
        )
        skipped = [c for c in all_cases if _needs_mount(c) and not can_mount]
        todo = [c for c in all_cases if c not in skipped]
        # Cases that share a folder (the fixture run, the mount point) run one after another.
        serial = [c for c in todo if c.verify or c.mount or c.signal_after]
        parallel = [c for c in todo if c not in serial]
        with futures.ThreadPoolExecutor(_JOBS.value) as pool:
            for c, r in zip(parallel, pool.map(lambda c: _run(c, scratch), parallel), strict=True):
                c.outcome = _judge(c, r)
        for c in serial:
            c.outcome = _judge(c, _run(c, scratch))
        return _report(todo, skipped)
    finally:
        if not _KEEP.value:
            shutil.rmtree(scratch, ignore_errors=True)


def _report(todo: list[Case], skipped: list[Case]) -> int:
    rows = {}
    for c in todo:
        row = rows.setdefault(
            c.klass,
            dict.fromkeys(
                ("cases", "clean", "tracebacks", "wrong_exit", "silent", "inconsistent", "other"), 0
            ),
        )
        row["cases"] += 1
        p = c.outcome["problems"]
        row["clean"] += not p
        row["tracebacks"] += "traceback" in p
        row["wrong_exit"] += "wrong exit" in p
        row["silent"] += "silent" in p
        row["inconsistent"] += any(x.startswith("inconsistent") for x in p)
        row["other"] += any(
            x not in ("traceback", "wrong exit", "silent") and not x.startswith("inconsistent")
            for x in p
        )
    total = {k: sum(r[k] for r in rows.values()) for k in next(iter(rows.values()))}
    head = f"{'class':<12}" + "".join(f"{k:>13}" for k in total)
    print(head)
    for name, r in [*rows.items(), ("TOTAL", total)]:
        print(f"{name:<12}" + "".join(f"{v:>13}" for v in r.values()))
    for c in todo:
        if c.outcome["problems"]:
            print(
                f"NOT CLEAN {c.klass} {c.tool} {' '.join(c.args)}: {c.outcome['problems']}"
                f" exit {c.outcome['exit']}: {c.outcome['error_line'] or c.outcome['stderr'][-300:]}"
            )
    for c in skipped:
        print(f"skipped (no unshare -rm to mount a tmpfs): {c.klass} {c.tool}")
    if _OUT.value:
        from edgequant import atomic

        atomic.write_json(
            _OUT.value,
            {
                "summary": rows,
                "total": total,
                "skipped": len(skipped),
                "cases": [{k: v for k, v in dataclasses.asdict(c).items()} for c in todo],
            },
        )
    return 0 if total["clean"] == total["cases"] else 1


if __name__ == "__main__":
    cli.run(main)
