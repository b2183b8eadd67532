"""Benchmarks one model on one device over SSH.

Deploy is content-addressed: the model goes to `<workdir>/models/<sha256>.tflite` and the runner
to `<workdir>/runner-<sha256>.py`; both are sent only when missing, so a re-run costs one round
trip plus the measurement. Each run gets a fresh `mktemp -d` directory on the device for its
output, removed afterwards. The device runner times `invoke()` itself and returns every sample,
so network latency never enters the numbers.

Output parity: the host runs the model once with LiteRT on the same seeded inputs, the outputs
go to the device (content-addressed like the model), and the runner reports the difference in
LSBs (`parity`); a difference over `Settings.parity_lsb` fails the check.
"""

from __future__ import annotations

import functools
import json
import platform
import shlex
import signal
import tempfile
import threading
from pathlib import Path

from edgequant.bench import device_runner
from edgequant.bench.inventory import Device
from edgequant.bench.settings import Settings
from edgequant.bench.ssh import RemoteError, Transport

RUNNER = Path(device_runner.__file__)


def _remote_runner(base: str) -> str:
    """Where the runner lives on a device: named by its content, so an edited runner is sent
    again and an unchanged one never is."""
    return f"{base}/runner-{device_runner.sha256_file(RUNNER)[:16]}.py"


def remote_dir(workdir: str) -> str:
    """ssh starts in the home directory, so '~/x' is sent as the relative 'x' (quoting would
    otherwise stop the remote shell from expanding the tilde)."""
    return workdir[2:] if workdir.startswith("~/") else workdir


def _upload_if_missing(t: Transport, local: Path, remote: str, timeout: float) -> bool:
    script = f"test -f {shlex.quote(remote)} && echo present || echo missing"
    if t.run(["sh", "-c", script], timeout).strip() == "present":
        return False
    tmp = remote + ".part"
    put = f"mkdir -p {shlex.quote(str(Path(remote).parent))} && cat > {shlex.quote(tmp)} && mv {shlex.quote(tmp)} {shlex.quote(remote)}"
    t.run(["sh", "-c", put], timeout, stdin=local.read_bytes())
    return True


_REFERENCES: dict[tuple[str, int], tuple[Path, str] | None] = {}
_REFERENCE_LOCK = threading.Lock()


@functools.cache
def _reference_dir() -> tempfile.TemporaryDirectory:
    """One directory per process for the reference outputs, removed when the process exits."""
    return tempfile.TemporaryDirectory(prefix="edgequant-ref-")


def host_reference(model: Path, seed: int, model_sha: str | None = None) -> tuple[Path, str] | None:
    """The host's LiteRT outputs for the runner's seeded inputs, as (.npz, runtime label).

    None when the host cannot run the model (an Edge TPU custom op): no parity check then.
    Computed once per (model, seed) per process, under a lock because fleet threads share it;
    the file name carries the LiteRT version, so a device never keeps a stale reference.
    """
    k = (model_sha or device_runner.sha256_file(model), seed)
    with _REFERENCE_LOCK:
        if k not in _REFERENCES:
            _REFERENCES[k] = _compute_reference(model, *k)
        return _REFERENCES[k]


def _compute_reference(model: Path, model_sha: str, seed: int) -> tuple[Path, str] | None:
    try:
        interp, info = device_runner.make_interpreter(str(model), "litert")
        inputs = device_runner.random_inputs(interp, seed)
        for detail, value in zip(interp.get_input_details(), inputs, strict=True):
            interp.set_tensor(detail["index"], value)
        interp.invoke()
    except (device_runner.RunnerError, RuntimeError, ValueError):
        return None
    name = f"{model_sha}-s{seed}-litert{info['runtime_version']}.npz"
    path = Path(_reference_dir().name) / name
    device_runner.save_reference(interp, path)
    return path, f"{info['runtime']} {info['runtime_version']} on the host ({platform.machine()})"


def probe(device: Device, transport: Transport, timeout: float = 300.0) -> dict:
    """{"runtimes": {name: "package version"}, "environment": {...}} of the device's Python."""
    base = remote_dir(device.workdir)
    remote_runner = _remote_runner(base)
    _upload_if_missing(transport, RUNNER, remote_runner, timeout)
    rc, out, err = transport.call([device.python, remote_runner, "--list_runtimes"], timeout)
    if rc != 0:
        raise RemoteError(f"{device.name}: {_failure(rc, err, device)}")
    return _last_json(out)


def _failure(rc: int, err: str, device: Device) -> str:
    """One line saying why the device's Python failed (not found, module missing, killed)."""
    if rc == 127:
        return f"remote python '{device.python}' not found (is it installed?)"
    if "No module named" in err:
        missing = err.strip().splitlines()[-1]
        return f"{missing} (install numpy and tflite-runtime on the device)"
    if rc > 128 and rc - 128 in signal.valid_signals():
        # sh reports a child killed by signal N as 128+N (the OOM killer, a crash, a kill -9).
        return f"device runner killed by {signal.Signals(rc - 128).name} (exit status {rc})"
    tail = err.strip().splitlines()[-1] if err.strip() else f"exit status {rc}"
    return f"device runner failed: {tail}"


def run_on_device(
    device: Device,
    model: str | Path,
    settings: Settings,
    transport: Transport,
    timeout: float = 300.0,
    postprocess: str | Path | None = None,
) -> dict:
    """Deploys (if needed) and benchmarks one model; returns the runner's JSON result.
    `postprocess`: a float tail .tflite uploaded beside it and chained after the body (the
    result's `postprocess.latency_ms` is end to end; `latency_ms` stays the body's)."""
    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"model not found: {model}")
    base = remote_dir(device.workdir)
    model_sha = device_runner.sha256_file(model)
    remote_model = f"{base}/models/{model_sha}.tflite"
    remote_runner = _remote_runner(base)
    sent_model = _upload_if_missing(transport, model, remote_model, timeout)
    _upload_if_missing(transport, RUNNER, remote_runner, timeout)
    remote_tail = None
    if postprocess:
        remote_tail = f"{base}/models/{device_runner.sha256_file(postprocess)}.tflite"
        _upload_if_missing(transport, Path(postprocess), remote_tail, timeout)

    def on_device(path: str) -> str:  # relative paths are relative to the login directory
        return shlex.quote(path) if path.startswith("/") else '"$h"/' + shlex.quote(path)

    args = [*settings.runner_args()]
    if device.edgetpu and "_edgetpu" in model.name:
        args.append("--edgetpu")
    reference = (
        host_reference(model, settings.seed, model_sha) if settings.parity_lsb is not None else None
    )
    if reference:
        remote_ref = f"{base}/reference/{reference[0].name}"
        _upload_if_missing(transport, reference[0], remote_ref, timeout)
        args += ["--reference", remote_ref, "--reference_runtime", reference[1]]
    if remote_tail:
        args += ["--postprocess", remote_tail]
    inner = " ".join(
        [
            shlex.quote(device.python),
            on_device(remote_runner),
            on_device(remote_model),
            *(on_device(a) if a.startswith(f"{base}/") else shlex.quote(a) for a in args),
        ]
    )
    # One temp dir per run as the runner's working directory; always removed, even on failure.
    script = f'h=$(pwd); d=$(mktemp -d) || exit 1; cd "$d" || exit 1; {inner}; rc=$?; cd /; rm -rf "$d"; exit $rc'
    rc, out, err = transport.call(["sh", "-c", script], timeout)
    try:
        result = _last_json(out)
    except RemoteError:
        raise RemoteError(f"{device.name}: {_failure(rc, err, device)}") from None
    if "error" in result:
        raise RemoteError(f"{device.name}: {result['error']}")
    result.update(
        device=device.name,
        model=model.name,
        model_sha256=model_sha,
        model_uploaded=sent_model,
        settings=settings.to_dict(),
    )
    return result


def _last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RemoteError(f"device runner printed no result: {text.strip()[-200:]}")
