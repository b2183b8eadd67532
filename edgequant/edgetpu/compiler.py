"""Runs `edgetpu_compiler` and turns what it prints into data.

The compiler is an x86-64 Debian binary with no Python API. It is run with an argument list
(no shell), its exit status AND its output markers are checked (it has exited 0 after printing
only its version, and printed "Compilation failed!" in other runs), and stdout plus the `.log`
file are parsed. Without the compiler this is not an error: the result says "not_compiled" and
why, and callers keep the analyzer's prediction instead.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import signal
import subprocess
from pathlib import Path

from edgequant.edgetpu import compiler_log

INSTALL_HINT = (
    "edgetpu_compiler is not installed: it exists only for x86-64 Debian/Ubuntu, from Coral's "
    "apt repository (package edgetpu-compiler; see coral.ai/docs/edgetpu/compiler), or use "
    "Coral's Colab compiler notebook; pass --compiler=PATH if it is installed elsewhere"
)


@dataclasses.dataclass(frozen=True)
class CompileOptions:
    show_operations: bool = True  # -s
    min_runtime_version: int | None = None  # -m
    num_segments: int | None = None  # -n
    intermediate_tensors: tuple[str, ...] = ()  # -i
    multiple_subgraphs: bool = False  # -a
    search_delegate: bool = False  # -d
    delegate_search_step: int | None = None  # -k
    timeout_sec: int | None = None  # -t

    def args(self) -> list[str]:
        a = []
        if self.show_operations:
            a.append("--show_operations")
        if self.min_runtime_version is not None:
            a.append(f"--min_runtime_version={self.min_runtime_version}")
        if self.num_segments:
            a.append(f"--num_segments={self.num_segments}")
        if self.intermediate_tensors:
            a.append(f"--intermediate_tensors={','.join(self.intermediate_tensors)}")
        if self.multiple_subgraphs:
            a.append("--enable_multiple_subgraphs")
        if self.search_delegate:
            a.append("--search_delegate")
        if self.delegate_search_step is not None:
            a.append(f"--delegate_search_step={self.delegate_search_step}")
        if self.timeout_sec is not None:
            a.append(f"--timeout_sec={self.timeout_sec}")
        return a


@dataclasses.dataclass(frozen=True)
class CompileResult:
    status: str  # "compiled", "failed" or "not_compiled"
    reason: str
    command: tuple[str, ...] = ()
    returncode: int | None = None
    log: compiler_log.CompileLog | None = None
    output_files: tuple[str, ...] = ()
    logs: tuple[compiler_log.CompileLog, ...] = ()  # one per co-compiled model or segment

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "reason": self.reason,
            "command": list(self.command),
            "returncode": self.returncode,
            "log": self.log.to_dict() if self.log else None,
            "output_files": list(self.output_files),
            "logs": [b.to_dict() for b in self.logs],
        }


def find_compiler(explicit: str | None = None) -> str | None:
    """The compiler's path: `explicit` if given (must exist), else `edgetpu_compiler` on PATH."""
    if explicit:
        path = shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
        if path is None:
            raise FileNotFoundError(f"compiler not found: {explicit}")
        return path
    return shutil.which("edgetpu_compiler")


# The compiler forks a child that does the work ("Compilation child process completed within
# timeout period"), and its own -t timer has been seen to leave that child running. A grace
# period lets the compiler report its own timeout before the wrapper kills the whole group.
GRACE_SEC = 3.0
DEFAULT_TIMEOUT_SEC = 180  # the compiler's own default for -t


def run_bounded(
    command: tuple[str, ...] | list[str], timeout_sec: float | None
) -> tuple[int, str, str]:
    """Runs `command` in its own process group; on timeout kills the whole group.

    subprocess.run(timeout=...) kills only the direct child, and then waits for the pipes to
    close, which a surviving grandchild holds open: that is how a 5 s timeout once returned
    after 65 s and left the compiler's worker alive. Here the group is killed with SIGKILL at
    `timeout_sec + GRACE_SEC`, so the call returns within that bound and leaves nothing behind.
    Raises subprocess.TimeoutExpired after the kill.
    """
    limit = (DEFAULT_TIMEOUT_SEC if timeout_sec is None else timeout_sec) + GRACE_SEC
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,  # its own session and process group, pgid == pid
    )
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()  # the pipes close once every member of the group is dead
        raise subprocess.TimeoutExpired(command, limit) from None
    # A well-behaved compiler leaves no children; reap any that outlived it.
    _kill_group(proc.pid)
    return proc.returncode, stdout, stderr


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def compile_model(
    path: str | Path,
    out_dir: str | Path,
    compiler: str | None = None,
    options: CompileOptions = CompileOptions(),
) -> CompileResult:
    """Compiles one model into out_dir; never raises for a missing compiler or a failed compile."""
    return compile_models([path], out_dir, compiler, options)


def compile_models(
    paths: list[str | Path],
    out_dir: str | Path,
    compiler: str | None = None,
    options: CompileOptions = CompileOptions(),
) -> CompileResult:
    """Compiles several models in ONE compiler call, so they share the on-chip parameter cache
    (coral.ai/docs/edgetpu/compiler: co-compiled models "can share the Edge TPU's RAM for
    parameter data caching"; the first model listed gets the cache first). With
    options.num_segments each model is split into `<stem>_segment_<i>_of_<N>_edgetpu.tflite`
    for pipelining over N Edge TPUs. `logs` holds one parsed summary block per output model."""
    paths, out_dir = [Path(p) for p in paths], Path(out_dir)
    if not paths:
        raise ValueError("no model to compile")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"model not found: {path}")
    exe = find_compiler(compiler)
    if exe is None:
        where = f"{platform.system()} {platform.machine()}"
        return CompileResult("not_compiled", f"{INSTALL_HINT} (this machine: {where})")
    out_dir.mkdir(parents=True, exist_ok=True)
    command = (exe, f"--out_dir={out_dir}", *options.args(), *(str(p) for p in paths))
    try:
        returncode, stdout, stderr = run_bounded(command, options.timeout_sec)
    except subprocess.TimeoutExpired as e:
        return CompileResult("failed", f"compiler did not finish within {e.timeout:g} s", command)
    except OSError as e:
        return CompileResult("failed", f"cannot run {exe}: {e}", command)
    proc = subprocess.CompletedProcess(command, returncode, stdout, stderr)
    text = proc.stdout + "\n" + proc.stderr
    blocks = tuple(compiler_log.parse_blocks(text))
    outputs: list[str] = []
    for path in paths:
        log_file = out_dir / f"{path.stem}_edgetpu.log"
        if log_file.is_file() and len(paths) == 1:
            text += "\n" + log_file.read_text(errors="replace")
        outputs += sorted(str(p) for p in out_dir.glob(f"{path.stem}*_edgetpu.tflite"))
    outputs = tuple(outputs)
    log = compiler_log.parse(text)
    if proc.returncode != 0 or log.succeeded is False or log.errors:
        reason = "; ".join(log.errors) if log.errors else f"exit status {proc.returncode}"
        return CompileResult("failed", reason, command, proc.returncode, log, outputs, blocks)
    if not outputs:
        return CompileResult(
            "failed",
            "compiler exited 0 but wrote no *_edgetpu.tflite "
            "(it may have printed only its version)",
            command,
            0,
            log,
        )
    summary = f"{log.mapped_count} ops on the Edge TPU, {log.cpu_count} on the CPU"
    return CompileResult("compiled", summary, command, 0, log, outputs, blocks)
