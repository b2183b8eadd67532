"""Multi-worker runs: the cluster from TF_CONFIG, who writes the workdir, and dead workers.

TensorFlow's multi-worker recipe (tensorflow.org/tutorials/distribute/multi_worker_with_keras):
every worker runs the same program; the cluster and each process's role come from the
`TF_CONFIG` environment variable; worker 0 is the chief (unless the cluster names a `chief`
task); only the chief writes the real output folder, the others write to temporary folders
that they remove afterwards. Here every worker runs the whole pipeline (training steps are
collective, so all must reach them in the same order), and `output_dir` hands non-chief
workers a temporary workdir.

A dead peer must fail the run, never hang it: collective operations get a timeout
(`CommunicationOptions(timeout_seconds=...)`), a collective error is turned into one line
naming the worker, and the local launcher (`launch`) stops the others as soon as one dies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from edgequant.errors import UserError

log = logging.getLogger(__name__)

# Seconds a collective op (one gradient all-reduce) may wait for its peers. Workers also run the
# non-collective stages (conversion, evaluation) between training phases at their own pace, so
# the timeout must exceed the largest gap between workers, not just one step.
DEFAULT_TIMEOUT_SECS = 600.0


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place in the cluster described by TF_CONFIG."""

    tasks: dict[str, tuple[str, ...]]  # task type -> addresses
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        return len(self.tasks.get("chief", ())) + len(self.tasks.get("worker", ()))

    @property
    def is_chief(self) -> bool:
        if "chief" in self.tasks:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"

    def address(self, task_type: str, index: int) -> str:
        return self.tasks.get(task_type, ("?",) * (index + 1))[index]


def cluster(environ: dict | None = None) -> Cluster | None:
    """The cluster in TF_CONFIG, or None when it is unset (a single-process run)."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        spec = json.loads(text)
        tasks = {k: tuple(v) for k, v in spec["cluster"].items()}
        task_type, index = spec["task"]["type"], int(spec["task"]["index"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(
            'TF_CONFIG is not {"cluster": {"worker": [host:port, ...]}, "task": {"type": '
            f'"worker", "index": i}}: {text[:200]}'
        ) from None
    if task_type not in tasks or not 0 <= index < len(tasks[task_type]):
        raise ValueError(f"TF_CONFIG task {task_type} {index} is not in its cluster {tasks}")
    return Cluster(tasks, task_type, index)


def is_chief(environ: dict | None = None) -> bool:
    """True for the process that writes outputs: the chief, or any single-process run."""
    c = cluster(environ)
    return c is None or c.is_chief


_TEMP_PREFIX = "edgequant-worker-"


@contextlib.contextmanager
def output_dir(workdir: str | Path, environ: dict | None = None) -> Iterator[Path]:
    """Where this process writes: `workdir` on the chief; on any other worker a temporary
    folder, removed on exit (models, checkpoints and logs of non-chief workers are copies of
    the chief's, and two writers of one workdir would corrupt it)."""
    workdir = Path(workdir)
    c = cluster(environ)
    if c is None or c.is_chief or workdir.name.startswith(_TEMP_PREFIX):
        yield workdir
        return
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{c.task_index}-"))
    log.info("%s is not the chief: writing to %s (removed at the end)", c.name, tmp)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def multi_worker_strategy(timeout_secs: float = DEFAULT_TIMEOUT_SECS):
    """MultiWorkerMirroredStrategy over the TF_CONFIG cluster, with a timeout on collectives.

    Must be made before any other TF op runs in the process (TF configures collective ops at
    start-up), which is why the pipeline creates it before building the model.
    """
    import tensorflow as tf

    c = cluster()
    if c is None:
        raise UserError(
            "config.distribute is 'multi_worker' but TF_CONFIG is not set: start the workers "
            "with tools/launch.py --workers=N -- <binary> ..., or set TF_CONFIG on each host"
        )
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_secs)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def shard_data(ds):
    """Auto-shard policy DATA, for pipelines over in-memory arrays: each worker runs the same
    seeded pipeline and keeps every N-th element, so the global batches are those of a
    single-worker run (there are no files to split). Training reads arrays only; a file-based
    source would want policy FILE, so that no worker reads the whole dataset."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


_TASK = re.compile(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)")


@contextlib.contextmanager
def collective_errors() -> Iterator[None]:
    """Turns the error a dead or stalled peer causes into one line naming that worker."""
    import tensorflow as tf

    try:
        yield
    except (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
    ) as e:
        c = cluster()
        if c is None:
            raise
        raise UserError(describe_peer_failure(str(e), c)) from None


def describe_peer_failure(message: str, c: Cluster) -> str:
    """One line for a collective failure: the peer it names (other than us), else the peers."""
    me = (c.task_type, c.task_index)
    named = [(t, int(i)) for t, i in _TASK.findall(message) if (t, int(i)) != me]
    if named:
        t, i = named[0]
        who = f"{t} {i} ({c.address(t, i)})"
    else:
        who = "a peer of " + c.name
    if "heartbeat" in message or "unhealthy" in message or "crashed" in message:
        why = "it stopped sending heartbeats: crashed, killed or cut off"
    elif "Deadline" in message or "timed out" in message.lower() or "timeout" in message.lower():
        why = "no answer within the collective timeout (config.distribute_timeout_secs)"
    else:
        text = re.sub(r"\{\{[^}]*\}\}", "", message)
        why = next((ln.strip() for ln in text.splitlines() if ln.strip()), "unknown error")[:160]
    return f"multi-worker training failed: {who} stopped responding ({why})"


# ---------------------------------------------------------------------------------------------
# The local launcher: N workers of one command on this machine.


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_config(addresses: Sequence[str], index: int) -> str:
    return json.dumps(
        {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}
    )


def _pump(stream, prefix: str, out) -> None:
    for raw in iter(stream.readline, b""):
        out.write(prefix + raw.decode(errors="replace"))
        out.flush()
    stream.close()


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with status {rc}"


def _stop(procs: Sequence[subprocess.Popen], grace: float = 5.0) -> None:
    """SIGTERM to each live worker's process group, SIGKILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        live = [p for p in procs if p.poll() is None]
        for p in live:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in live) and time.monotonic() < deadline:
            time.sleep(0.05)


def launch(
    command: Sequence[str],
    workers: int,
    finish_grace_secs: float = 120.0,
    stdout=None,
    stderr=None,
) -> int:
    """Runs `command` as `workers` local processes with TF_CONFIG on free loopback ports.

    Each worker's output is prefixed with `[worker i]`. Returns the chief's (worker 0's) exit
    status. The moment a worker fails (non-zero exit, or killed), the others are stopped and one
    `error:` line names it; after the chief succeeds the others get `finish_grace_secs` to end.
    A `.py` command runs with this interpreter.
    """
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if not command:
        raise ValueError("nothing to launch: put the binary and its flags after --")
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    argv = list(command)
    if argv[0].endswith(".py"):
        if not Path(argv[0]).is_file():
            raise FileNotFoundError(f"binary not found: {argv[0]}")
        argv = [sys.executable, *argv]
    addresses = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    procs, pumps = [], []
    try:
        for i in range(workers):
            env = {**os.environ, "TF_CONFIG": tf_config(addresses, i)}
            p = subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopping it stops its children
            )
            procs.append(p)
            for stream, out in ((p.stdout, stdout), (p.stderr, stderr)):
                t = threading.Thread(
                    target=_pump, args=(stream, f"[worker {i}] ", out), daemon=True
                )
                t.start()
                pumps.append(t)
        chief_done = None  # when the chief exited 0
        while True:
            failed = next((i for i, p in enumerate(procs) if (p.poll() or 0) != 0), None)
            if failed is not None:
                rc = procs[failed].returncode
                _stop(procs)
                for t in pumps:
                    t.join(timeout=5)
                print(
                    f"error: worker {failed} ({addresses[failed]}, pid {procs[failed].pid}) "
                    f"{_describe_exit(rc)}; stopped the other workers",
                    file=stderr,
                    flush=True,
                )
                return rc if failed == 0 and rc > 0 else 1
            if all(p.poll() is not None for p in procs):
                for t in pumps:
                    t.join(timeout=5)
                return 0
            if procs[0].poll() == 0:
                chief_done = chief_done or time.monotonic()
                if time.monotonic() - chief_done > finish_grace_secs:
                    stragglers = [str(i) for i, p in enumerate(procs) if p.poll() is None]
                    _stop(procs)
                    print(
                        f"error: worker(s) {', '.join(stragglers)} still running "
                        f"{finish_grace_secs:.0f} s after the chief finished; stopped them",
                        file=stderr,
                        flush=True,
                    )
                    return 1
            time.sleep(0.1)
    finally:
        _stop(procs, grace=2.0)
