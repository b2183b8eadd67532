"""Runs one probe case: the real binary in its own process, with real files, signals and a timeout.

TensorFlow takes ~5.5 s of CPU to import, and a probe of ~100 cases cannot pay that each time on
two cores. So a zygote (this module run as `python -m tests.probe.runner`) imports TensorFlow,
Keras and absl once, does nothing else (no TF op, so no TF thread pool yet), and forks one
child per case. The child is a real process: it gets its own argv, cwd, environment, stdout and
stderr files and signal dispositions, and runs the tool's file as `__main__` (runpy), so what
runs is the binary itself, only with its imports already done. A case marked `fresh` starts a
plain `python tools/X.py` instead (e.g. a signal while TensorFlow is still loading).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Outcome:
    exit: int | None  # None: killed by the timeout (a hang)
    stdout: str
    stderr: str
    seconds: float


def _private_tmpfs(target: str) -> None:
    """Mounts a tmpfs on target in a mount namespace of this process alone (as `unshare -rm`
    does), so a case can give a binary an --out_dir that is a mount point, a read-only folder
    ("PATH:ro") or a full disk ("PATH:size=16k"). The forked child has one thread, which
    unshare(CLONE_NEWUSER) requires."""
    import ctypes

    target, _, options = target.partition(":")
    words = [w for w in options.split(",") if w]
    libc = ctypes.CDLL(None, use_errno=True)
    newns, newuser, rec, private, rdonly = 0x20000, 0x10000000, 0x4000, 1 << 18, 1
    flags = rdonly if "ro" in words else 0
    data = ",".join(w for w in words if w != "ro").encode() or None
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(newns | (newuser if uid else 0)):
        raise OSError(ctypes.get_errno(), "unshare")
    if uid:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    os.makedirs(target, exist_ok=True)
    if libc.mount(None, b"/", None, rec | private, None) or libc.mount(
        b"tmpfs", target.encode(), b"tmpfs", flags, data
    ):
        raise OSError(ctypes.get_errno(), "mount", target)


def _child(req: dict) -> None:
    """In the forked child: become the binary (argv, cwd, env, std streams) and run it."""
    import runpy

    os.setsid()  # signals to the case's group reach its own subprocesses, not the zygote
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    if req.get("tmpfs"):
        _private_tmpfs(req["tmpfs"])
    if req.get("cgroup"):  # a memory cap of its own (tests/memcap.py), joined before any work
        Path(req["cgroup"], "cgroup.procs").write_text(str(os.getpid()))
    sys.argv = [req["script"], *req["args"]]
    # What a fresh interpreter's sys.path would be: the script's folder, then $PYTHONPATH.
    extra = [p for p in req["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:1] = [str(Path(req["script"]).parent), *[p for p in extra if p not in sys.path]]
    code = 0
    try:
        runpy.run_path(req["script"], run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int | None):
            print(e.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve() -> None:
    """The zygote loop: one JSON request a line on stdin, the child's pid a line on stdout; each
    child's exit status is written to req['rc'] when it ends (the zygote is its parent)."""
    from edgequant import cli

    cli.quiet_tensorflow()
    # TensorFlow, and what most binaries import next (each a second or so per child otherwise):
    # the flow and its report (matplotlib's first pyplot import alone is 0.8 s) and tfmot.
    import absl.flags  # noqa: F401
    import keras  # noqa: F401
    import ml_collections  # noqa: F401
    import numpy  # noqa: F401
    import tensorflow  # noqa: F401
    import tensorflow_model_optimization  # noqa: F401
    import tf_keras  # noqa: F401

    import edgequant.pipeline  # noqa: F401
    from edgequant.report import plots

    plots.pyplot()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    rc_files: dict[int, str] = {}
    signal.signal(signal.SIGCHLD, lambda *_: _reap(rc_files))
    print("ready", flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
        pid = os.fork()
        if pid == 0:
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
                _child(req)
            finally:
                os._exit(70)  # never back into the zygote's loop
        rc_files[pid] = req["rc"]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
        print(pid, flush=True)


def _reap(rc_files: dict[int, str]) -> None:
    """SIGCHLD: each ended child's exit status (128+N for a signal, as a shell says) to its file."""
    while rc_files:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        Path(rc_files.pop(pid)).write_text(str(128 - code if code < 0 else code))


class Zygote:
    """The parent side: starts the zygote once and asks it for one child per case."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_USE_LEGACY_KERAS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.probe.runner"],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        )  # fmt: skip
        self._lock = threading.Lock()
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the probe's zygote did not start")

    def start(self, req: dict) -> int:
        with self._lock:  # one request and its pid line at a time (tests run tools from threads)
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def script_of(tool: str) -> str:
    return str(REPO / f"{tool}.py" if "/" in tool else REPO / "tools" / f"{tool}.py")


def run(
    zygote: Zygote | None,
    tool: str,
    args: list[str],
    folder: Path,
    *,
    cwd: str | None = None,
    env: dict | None = None,
    timeout: float = 120,
    signals: tuple = (),
    during=None,
    tmpfs: str = "",
    cgroup: str = "",
) -> Outcome:
    """Runs tool with args; folder gets its stdout/stderr. signals: (glob or seconds, signum)
    pairs sent in order, each when its glob exists (or after its seconds); during(pid) runs
    once the process started (e.g. stopping a device mid-run). zygote None: a fresh python."""
    out, err, rc = folder / ".stdout", folder / ".stderr", folder / ".rc"
    rc.unlink(missing_ok=True)
    environ = {**os.environ, "TF_USE_LEGACY_KERAS": "1", **(env or {})}
    paths = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*paths, str(REPO)]))  # keep the caller's
    start = time.monotonic()
    req = {"script": script_of(tool), "args": args, "cwd": cwd or str(REPO), "env": environ,
           "stdout": str(out), "stderr": str(err), "rc": str(rc), "tmpfs": tmpfs,
           "cgroup": cgroup}  # fmt: skip
    if zygote is None:
        with open(out, "w") as o, open(err, "w") as e:
            proc = subprocess.Popen([sys.executable, req["script"], *args], cwd=req["cwd"],
                                    env=environ, stdout=o, stderr=e, start_new_session=True)  # fmt: skip
        pid, poll = proc.pid, proc.poll
    else:
        pid = zygote.start(req)

        def poll():
            return int(rc.read_text()) if rc.exists() and rc.read_text() else None

    deadline = start + timeout
    if during is not None:
        during(pid)
    for when, signum in signals:
        while poll() is None and time.monotonic() < deadline:
            if isinstance(when, int | float):
                if time.monotonic() - start >= when:
                    break
            elif glob.glob(when):
                break
            time.sleep(0.01)
        if poll() is None:
            os.kill(pid, signum)
    while poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    code = poll()
    # A fresh process killed by signal N reports -N: 128 + N, as the zygote and a shell say.
    if code is not None and code < 0:
        code = 128 - code
    if code is None:
        for sig in (signal.SIGKILL,):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    return Outcome(code, out.read_text(errors="replace"), err.read_text(errors="replace"),
                   round(time.monotonic() - start, 2))  # fmt: skip


if __name__ == "__main__":
    serve()
