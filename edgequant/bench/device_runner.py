"""Self-contained latency runner: the one timing routine used on the host and on devices.

This file is uploaded as-is to Coral/ARM boards, so it must stay runnable there:
Python 3.7 syntax, standard library + numpy + (tflite_runtime | ai_edge_litert | tensorflow)
only, no imports from the rest of edgequant. The host imports the same functions, so a number
measured on the host and one measured on a board come from identical code.

Method (after TFLite's benchmark_model): init time and the first invoke are reported apart
(the first Edge TPU invoke uploads weights and is much slower), warm-up runs until both a count
and a time are reached, then measured runs until `num_runs` AND `min_secs` are reached, capped by
`max_secs`. Only `interpreter.invoke()` is timed, with a monotonic high-resolution clock.
Percentiles use the nearest-rank method on all kept samples (no interpolation), as
benchmark_model does; std is the population standard deviation.
"""

import argparse
import glob
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time

import numpy as np

RUNTIMES = ("litert", "tflite_runtime", "tf")  # the order `auto` tries: fastest first
EMULATED_LABEL = "emulated: functional check, not a latency"
EDGETPU_LIB = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


# The measuring defaults. Their one home is edgequant/bench/settings.py; this file cannot import
# it (it runs alone on boards), so it repeats them here, once, and tests/test_bench.py pins the
# two equal.
DEFAULT_SETTINGS = {
    "num_runs": 100,
    "min_secs": 2.0,
    "max_secs": 60.0,
    "warmup_runs": 5,
    "warmup_min_secs": 0.5,
    "seed": 0,
    "parity_lsb": 8.0,
}
_D = DEFAULT_SETTINGS


class RunnerError(Exception):
    """An expected failure with a one-line message (missing runtime, bad model, ...)."""


def setting_problems(s):
    """Every measuring setting in `s` (a dict: runtime, threads, num_runs, min_secs, max_secs,
    warmup_runs, warmup_min_secs, seed, parity_lsb) that cannot describe a measurement, each
    naming its value and the valid range. The one home of these rules: bench/settings.py
    applies them to every Settings, and `main` to a command line typed on a board, where
    num_runs=-5 with max_secs=0 measured zero invokes and reported p50 nan with status "ok"."""
    out = []

    def check(name, ok, rule):
        if not ok:
            out.append("{}={} {}".format(name, s[name], rule))

    def finite(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def count(v):
        return isinstance(v, int) and not isinstance(v, bool)

    valid = ", ".join(("auto", "all") + RUNTIMES)
    check("runtime", s["runtime"] in ("auto", "all") + RUNTIMES, "(valid: {})".format(valid))
    check(
        "threads",
        s["threads"] is None or (count(s["threads"]) and s["threads"] >= 0),
        "must be an integer >= 1 (0 or none: the runtime's choice)",
    )
    check(
        "num_runs",
        count(s["num_runs"]) and s["num_runs"] >= 1,
        "must be at least 1 (measured invokes)",
    )
    check("warmup_runs", count(s["warmup_runs"]) and s["warmup_runs"] >= 0, "must be 0 or more")
    for name in ("min_secs", "warmup_min_secs"):
        check(name, finite(s[name]) and s[name] >= 0, "must be a number >= 0")
    check("max_secs", finite(s["max_secs"]) and s["max_secs"] > 0, "must be a number > 0")
    if finite(s["min_secs"]) and finite(s["max_secs"]) and 0 < s["max_secs"] < s["min_secs"]:
        out.append("max_secs={} is below min_secs={}".format(s["max_secs"], s["min_secs"]))
    check("seed", count(s["seed"]) and 0 <= s["seed"] < 2**32, "must be an integer in [0, 2**32)")
    check(
        "parity_lsb",
        s["parity_lsb"] is None or (finite(s["parity_lsb"]) and s["parity_lsb"] >= 0),
        "must be a number >= 0 (or none: no parity check)",
    )
    return out


def _import_runtime(runtime):
    """Returns (module with Interpreter/load_delegate, version string) for a runtime name."""
    if runtime == "auto":
        for name in RUNTIMES:
            try:
                return _import_runtime(name)
            except RunnerError:
                continue
        raise RunnerError("no TFLite runtime found: install ai-edge-litert or tflite-runtime")
    try:
        if runtime == "litert":
            from ai_edge_litert import interpreter as mod

            try:
                from importlib import metadata  # novermin (guarded: 3.7 falls back below)

                version = metadata.version("ai-edge-litert")
            except Exception:  # noqa: BLE001 - version is informative only
                version = "unknown"
            return mod, "ai-edge-litert " + version
        if runtime == "tflite_runtime":
            import tflite_runtime
            from tflite_runtime import interpreter as mod

            return mod, "tflite-runtime " + getattr(tflite_runtime, "__version__", "unknown")
        if runtime == "tf":
            import tensorflow as tf

            return tf.lite, "tensorflow " + tf.__version__
    except ImportError as e:
        raise RunnerError(f"runtime {runtime!r} is not installed here ({e})") from None
    raise RunnerError("unknown runtime {!r}; choose one of {}".format(runtime, ", ".join(RUNTIMES)))


def installed_runtimes():
    """{runtime name: "package version"} of every runtime this Python can import.

    `--runtime=all` measures each of them; `auto` takes the first in RUNTIMES order, because
    ai-edge-litert (current XNNPACK) ran several times faster than tflite-runtime 2.14 here.
    """
    found = {}
    for name in RUNTIMES:
        try:
            found[name] = _import_runtime(name)[1]
        except RunnerError:
            continue
    return found


def edgetpu_available():
    """How this board would reach an Edge TPU ("pycoral", "libedgetpu.so.1"), or None.

    Loading the library does not need the accelerator plugged in; opening it does, and that
    failure is reported when a model is actually run."""
    try:
        import pycoral.utils.edgetpu  # noqa: F401 - Coral's package, never PyPI's "pycoral"

        return "pycoral"
    except ImportError:
        pass
    import ctypes

    lib = EDGETPU_LIB.get(platform.system(), "libedgetpu.so.1")
    try:
        ctypes.CDLL(lib)
        return lib
    except OSError:
        return None


def needs_edgetpu(model_path):
    """True for a model compiled by edgetpu_compiler: it holds the `edgetpu-custom-op`, which
    no CPU runtime can run, so the Edge TPU delegate is used when present (and its absence is
    a clear error instead of an unresolved custom op)."""
    with open(model_path, "rb") as f:
        return b"edgetpu-custom-op" in f.read()


def make_interpreter(model_path, runtime="auto", num_threads=None, xnnpack=True, edgetpu=False):
    """Builds an allocated interpreter. Returns (interpreter, info dict).

    `xnnpack=False` builds the interpreter without default delegates (XNNPACK is applied by
    default in LiteRT and TF >= 2.x). `edgetpu=True` (implied by an Edge TPU-compiled model)
    uses pycoral's make_interpreter when present, else load_delegate('libedgetpu.so.1');
    a missing delegate is a RunnerError.
    """
    if not os.path.isfile(model_path):
        raise RunnerError(f"model not found: {model_path}")
    edgetpu = edgetpu or needs_edgetpu(model_path)
    if edgetpu and runtime == "auto":
        # libedgetpu is documented with tflite_runtime.load_delegate (coral.ai/docs/edgetpu/
        # tflite-python), so that pairing goes first; pycoral, when present, wins below anyway.
        try:
            mod, version = _import_runtime("tflite_runtime")
        except RunnerError:
            mod, version = _import_runtime("auto")
    else:
        mod, version = _import_runtime(runtime)
    info = {
        "runtime": version.split(" ")[0],
        "runtime_version": version.split(" ")[-1],
        "num_threads": num_threads,
        "xnnpack": bool(xnnpack),
        "delegate": None,
    }
    kwargs = {"model_path": model_path}
    if num_threads is not None:
        kwargs["num_threads"] = int(num_threads)
    if edgetpu:
        try:  # Coral's own helper (from Coral's repository, never PyPI's unrelated "pycoral")
            from pycoral.utils.edgetpu import make_interpreter as coral_make_interpreter
        except ImportError:
            coral_make_interpreter = None
        if coral_make_interpreter is not None:
            try:
                interpreter = coral_make_interpreter(model_path)
                interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as e:
                raise RunnerError(
                    f"Edge TPU interpreter could not be created ({str(e).splitlines()[0]}); is the "
                    "accelerator connected?"
                ) from None
            info.update(runtime="pycoral", delegate="edgetpu:pycoral")
            return interpreter, info
        lib = EDGETPU_LIB.get(platform.system(), "libedgetpu.so.1")
        if edgetpu_available() is None:  # checked first: a failed load_delegate warns on exit
            raise RunnerError(
                f"Edge TPU delegate {lib} could not be loaded (not installed); install "
                "libedgetpu (Coral's repository) and connect the accelerator"
            )
        try:
            delegate = mod.load_delegate(lib)
        except (ValueError, OSError, AttributeError) as e:
            raise RunnerError(
                f"Edge TPU delegate {lib} could not be loaded ({e}); install libedgetpu "
                "and check the accelerator is connected"
            ) from None
        kwargs["experimental_delegates"] = [delegate]
        info["delegate"] = "edgetpu:" + lib
    elif not xnnpack:
        resolver = getattr(mod, "OpResolverType", None)
        if resolver is None:
            raise RunnerError("this runtime cannot disable XNNPACK (no OpResolverType)")
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    else:
        info["delegate"] = "xnnpack(default)"
    try:
        interpreter = mod.Interpreter(**kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunnerError(f"cannot load model {model_path}: {msg}") from None
    return interpreter, info


def random_inputs(interpreter, seed=0):
    """Seeded inputs inside each input tensor's valid range (full int range for quantized)."""
    rng = np.random.RandomState(seed)
    inputs = []
    for detail in interpreter.get_input_details():
        shape, dtype = detail["shape"], detail["dtype"]
        if np.issubdtype(dtype, np.integer):
            lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
            inputs.append(rng.randint(lo, hi + 1, size=shape).astype(dtype))
        elif dtype == np.bool_:
            inputs.append(rng.randint(0, 2, size=shape).astype(dtype))
        else:
            inputs.append(rng.uniform(0.0, 1.0, size=shape).astype(dtype))
    return inputs


def _resize_axis(size_in, size_out, method):
    """Source indices (and weights) of one axis, as TF2's tf.image.resize (half-pixel centers)."""
    scale = float(size_in) / size_out
    centers = (np.arange(size_out) + 0.5) * scale
    if method == "nearest":
        return np.minimum(np.floor(centers).astype(np.int64), size_in - 1), None, None
    pos = centers - 0.5
    lower = np.floor(pos)
    frac = (pos - lower).astype(np.float32)
    lo = np.clip(lower, 0, size_in - 1).astype(np.int64)
    hi = np.clip(lower + 1, 0, size_in - 1).astype(np.int64)
    return lo, hi, frac


def preprocess_image(image, spec):
    """uint8 [H, W, C] -> float32 [h, w, c]: the numpy twin of edgequant's image preprocessing
    (preprocessing.json; fit 'stretch', method 'bilinear' or 'nearest'), so a board feeds a real
    image exactly as calibration and evaluation did, with numpy alone (Python 3.7)."""
    if spec.get("fit", "stretch") != "stretch" or spec.get("method") not in ("bilinear", "nearest"):
        raise RunnerError(
            "the device applies fit 'stretch' with bilinear or nearest resizing; "
            "preprocess this image on the host"
        )
    x = np.asarray(image, np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    if spec["color"] == "grayscale" and x.shape[-1] == 3:
        x = (x * np.array([0.2989, 0.5870, 0.1140], np.float32)).sum(-1, keepdims=True)
    elif spec["color"] == "rgb" and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    h, w = spec["size"]
    ylo, yhi, fy = _resize_axis(x.shape[0], h, spec["method"])
    xlo, xhi, fx = _resize_axis(x.shape[1], w, spec["method"])
    if spec["method"] == "nearest":
        x = x[ylo][:, xlo]
    else:
        top = x[ylo][:, xlo] * (1 - fx)[None, :, None] + x[ylo][:, xhi] * fx[None, :, None]
        bottom = x[yhi][:, xlo] * (1 - fx)[None, :, None] + x[yhi][:, xhi] * fx[None, :, None]
        x = np.clip(top * (1 - fy)[:, None, None] + bottom * fy[:, None, None], 0.0, 255.0)
    channels = x.shape[-1]
    if spec.get("input_range"):
        lo, hi = spec["input_range"]
        scale, offset = np.full(channels, (hi - lo) / 255.0), np.full(channels, lo)
    else:
        mean = np.broadcast_to(np.asarray(spec["mean"], np.float32), (channels,))
        std = np.broadcast_to(np.asarray(spec["std"], np.float32), (channels,))
        scale, offset = 1.0 / std, -mean / std
    return (x * scale.astype(np.float32) + offset.astype(np.float32)).astype(np.float32)


PREPROCESSING_METADATA = "edgequant.preprocessing"  # preprocess.METADATA_NAME on the host
SPEC_KEYS = ("size", "color", "fit", "method", "input_range", "mean", "std")


def embedded_preprocessing(model_path):
    """The preprocessing spec (a dict) embedded in a .tflite's metadata, or None.

    A minimal flatbuffer walk with the standard library (a board has no TensorFlow): the root
    Model's `metadata` (field 6) names a buffer in `buffers` (field 4) whose bytes are the
    spec's JSON (tensorflow/compiler/mlir/lite/schema/schema.fbs). The host reads the same
    entry through TF's generated schema (data/preprocess.read_embedded); a test pins both equal.
    """
    import struct

    with open(model_path, "rb") as f:
        buf = f.read()

    def u32(pos):
        return struct.unpack_from("<I", buf, pos)[0]

    def field(table, index):  # absolute position of a table field, or None when absent
        vtable = table - struct.unpack_from("<i", buf, table)[0]
        if 4 + 2 * index >= struct.unpack_from("<H", buf, vtable)[0]:
            return None
        offset = struct.unpack_from("<H", buf, vtable + 4 + 2 * index)[0]
        return table + offset if offset else None

    def vector(pos):  # (first element, length) of the vector a field points at
        start = pos + u32(pos)
        return start + 4, u32(start)

    def element(start, i):  # the table at index i of a vector of tables
        return start + 4 * i + u32(start + 4 * i)

    try:
        if buf[4:8] != b"TFL3":
            raise ValueError("no TFL3 identifier")
        root = u32(0)
        meta = field(root, 6)
        for i in range(vector(meta)[1] if meta else 0):
            entry = element(vector(meta)[0], i)
            name = field(entry, 0)
            start, length = vector(name) if name else (0, 0)
            if buf[start : start + length] != PREPROCESSING_METADATA.encode():
                continue
            index = field(entry, 1)
            buffer = element(vector(field(root, 4))[0], u32(index) if index else 0)
            data = field(buffer, 0)
            start, length = vector(data) if data else (0, 0)
            return json.loads(buf[start : start + length].decode())
    except (struct.error, TypeError, ValueError, UnicodeDecodeError) as e:
        raise RunnerError("cannot read the preprocessing in %s: %s" % (model_path, e)) from None
    return None


def image_spec(model_path, spec_path=None):
    """The spec that feeds an image to this model: the one embedded in it, else the bundle's
    preprocessing.json; both given and different is an error naming the values that differ."""
    embedded = embedded_preprocessing(model_path)
    given = None
    if spec_path:
        try:
            with open(spec_path) as f:
                given = json.load(f)
        except (OSError, ValueError) as e:
            raise RunnerError("cannot read --preprocessing %s: %s" % (spec_path, e)) from None
    if embedded is None and given is None:
        raise RunnerError(
            "%s carries no preprocessing: pass --preprocessing=preprocessing.json" % model_path
        )
    if embedded is not None and given is not None:
        differ = [k for k in SPEC_KEYS if given.get(k) != embedded.get(k)]
        if differ:
            raise RunnerError(
                "--preprocessing %s contradicts the model's embedded preprocessing: %s"
                % (
                    spec_path,
                    "; ".join("%s %s vs %s" % (k, given.get(k), embedded.get(k)) for k in differ),
                )
            )
    return embedded if embedded is not None else given


def run_image(model_path, image_path, spec_path=None, runtime="auto", num_threads=None):
    """One real image (a .npy of uint8 pixels) through the model: outputs and top-5 indices."""
    spec = image_spec(model_path, spec_path)
    try:
        image = np.load(image_path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise RunnerError("cannot read image %s: %s" % (image_path, e)) from None
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3)):
        raise RunnerError(
            "image %s has shape %s: expected [H, W] or [H, W, 1 or 3] pixels"
            % (image_path, list(image.shape))
        )
    interpreter, info = make_interpreter(model_path, runtime, num_threads)
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise RunnerError("an image feeds a one-input model; this one has %d inputs" % len(inputs))
    x = preprocess_image(image, spec)[None]
    detail = inputs[0]
    scale, zero_point = detail["quantization"]
    if np.issubdtype(detail["dtype"], np.integer) and scale:
        limits = np.iinfo(detail["dtype"])
        x = np.clip(np.round(x / scale) + zero_point, limits.min, limits.max)
    interpreter.set_tensor(detail["index"], x.astype(detail["dtype"]))
    interpreter.invoke()
    outputs = {}
    for d in interpreter.get_output_details():
        y = interpreter.get_tensor(d["index"]).astype(np.float64)
        scale, zero_point = d["quantization"]
        outputs[d["name"]] = ((y - zero_point) * scale if scale else y).ravel().tolist()
    first = np.asarray(next(iter(outputs.values())))
    result = dict(info)
    result.update(
        {
            "model": os.path.basename(model_path),
            "outputs": outputs,
            "top5": np.argsort(-first)[:5].tolist(),
        }
    )
    return result


def percentile(sorted_samples, p):
    """Nearest-rank percentile of an ascending list (p in [0, 100])."""
    if not sorted_samples:
        return float("nan")
    k = max(1, int(math.ceil(p / 100.0 * len(sorted_samples))))
    return sorted_samples[min(k, len(sorted_samples)) - 1]


MAX_SAMPLES = 1000  # samples kept in a record; percentiles always use all of them


def _thin(samples):
    """At most MAX_SAMPLES evenly spaced samples: a model that runs in microseconds yields
    hundreds of thousands per run, which would bloat every stored record."""
    if len(samples) <= MAX_SAMPLES:
        return samples
    step = float(len(samples)) / MAX_SAMPLES
    return [samples[int(i * step)] for i in range(MAX_SAMPLES)]


def summarize(samples_ms):
    """n, min, p50, p90, p95, p99, max, mean, std (population) of samples in milliseconds."""
    s = sorted(samples_ms)
    n = len(s)
    mean = sum(s) / n if n else float("nan")
    std = math.sqrt(sum((x - mean) ** 2 for x in s) / n) if n else float("nan")
    out = {
        "n": n,
        "min": s[0] if n else float("nan"),
        "max": s[-1] if n else float("nan"),
        "mean": mean,
        "std": std,
        "percentile_method": "nearest-rank",
    }
    for p in (50, 90, 95, 99):
        out[f"p{p}"] = percentile(s, p)
    return out


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def sha256_file(path):
    """The one sha256 helper of edgequant (here because this file must run alone on boards)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _os_name():
    """PRETTY_NAME of /etc/os-release (e.g. "Mendel GNU/Linux 5 (Eagle)"), else platform's."""
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return f"{platform.system()} {platform.release()}"


_ARM = ("aarch64", "arm64", "armv7l", "armv8l")


def detect_emulation(cpuinfo=None):
    """Why this Python is emulated (a reason string), or None on real hardware.

    qemu-user runs a foreign binary as an ordinary host process: the process name stays the
    emulator's (`qemu-aarch64-st`, from /proc/self/comm, which qemu does not fake), and the
    kernel's /proc/cpuinfo still describes the host CPU (an x86 vendor_id under an aarch64
    Python). Either is enough; timings from such a process measure the emulator, not a board.
    """
    comm = _read("/proc/self/comm") or ""
    if comm.startswith("qemu-"):
        return f"running under qemu-user (process {comm}, {platform.machine()} Python)"
    cpuinfo = _read("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    if platform.machine() in _ARM and "vendor_id" in (cpuinfo or ""):
        vendor = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.splitlines()
            if ln.startswith("vendor_id") and ":" in ln
        ][0]
        return f"{platform.machine()} Python on a kernel reporting an x86 CPU ({vendor})"
    return None


def collect_environment():
    """What the numbers depend on: CPU, governor, temperature/throttling, kernel, versions.

    Everything is read from /proc and /sys where present (Linux boards); what cannot be read is
    None, never a failure. A governor other than `performance` gets a warning, as pycoral's
    benchmarks do, because frequency scaling moves latency by tens of percent.
    """
    cpu = None
    cpuinfo = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model", "cpu model"):
        for line in cpuinfo.splitlines():
            if line.startswith(key) and ":" in line:
                cpu = line.split(":", 1)[1].strip()
                break
        if cpu:
            break
    governors = sorted(
        set(
            filter(
                None,
                (
                    _read(p)
                    for p in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor")
                ),
            )
        )
    )
    temps = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        value = _read(os.path.join(zone, "temp"))
        if value and value.lstrip("-").isdigit():
            temps[_read(os.path.join(zone, "type")) or os.path.basename(zone)] = int(value) / 1000.0
    throttled = None
    try:  # Raspberry Pi firmware; 0x0 means never throttled or under-volted
        throttled = (
            subprocess.check_output(
                ["vcgencmd", "get_throttled"], stderr=subprocess.STDOUT, timeout=5
            )
            .decode()
            .strip()
        )
    except (OSError, subprocess.SubprocessError):
        pass
    warnings = []
    if governors and governors != ["performance"]:
        warnings.append(
            "CPU governor is {}, not performance: latency may vary with frequency "
            "scaling (echo performance > /sys/devices/system/cpu/cpu*/cpufreq/"
            "scaling_governor)".format(",".join(governors))
        )
    emulation = detect_emulation(cpuinfo)
    cpu = cpu or platform.processor() or platform.machine()
    if emulation:
        warnings.append(f"{EMULATED_LABEL} ({emulation})")
        cpu = f"{cpu} (the host's CPU, emulating {platform.machine()})"
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "governor": ",".join(governors) or None,
        "temperatures_c": temps,
        "throttled": throttled,
        "kernel": platform.release(),
        "os": _os_name(),
        "emulated": emulation,
        "device_tree_model": (_read("/proc/device-tree/model") or "").rstrip("\x00") or None,
        "hostname": platform.node(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "warnings": warnings,
    }


def check_golden(interpreter, golden_path, atol):
    """Compares output 0 with a saved .npy golden output; returns a dict with the verdict."""
    expected = np.load(golden_path)
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    if got.shape != expected.shape:
        return {
            "ok": False,
            "reason": f"output shape {list(got.shape)}, golden {list(expected.shape)}",
        }
    diff = (
        float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
        if got.size
        else 0.0
    )
    return {"ok": diff <= atol, "max_abs_diff": diff, "atol": atol}


def output_tensors(interpreter):
    """Every output, in the model's output order (the same order in every runtime)."""
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def save_reference(interpreter, path):
    """Writes all outputs and their names as .npz: the host side of the parity check."""
    outs = output_tensors(interpreter)
    arrays = {f"output_{i}": o for i, o in enumerate(outs)}
    arrays["names"] = np.array([d["name"] for d in interpreter.get_output_details()])
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def check_parity(interpreter, reference_path, max_lsb, device_runtime, reference_runtime):
    """This runtime's outputs against a reference runtime's, for the same seeded inputs.

    Integer outputs are compared in LSBs (steps of the output's quantization). Kernels differ in
    requantization rounding (XNNPACK vs TFLite's optimized kernels) and the differences carry
    through the layers: tflite-runtime 2.14 and ai-edge-litert 2.3 disagreed by 0-4 LSB on
    Coral's test models (4 on tf2_mobilenet_v2_1.0_224_ptq), hence the default bound of 8, twice
    that and 3% of an 8-bit range; a wrong kernel or a broken delegate is off by tens of LSB.
    Float outputs have no LSB: they are compared relative to the reference's largest magnitude,
    the bound being max_lsb / 256 (the resolution an 8-bit output would have).
    """
    with np.load(reference_path) as ref:
        names = [str(n) for n in ref["names"]]
        expected = [ref[f"output_{i}"] for i in range(len(names))]
    details = interpreter.get_output_details()
    got = output_tensors(interpreter)
    who = f"{device_runtime} on the device vs {reference_runtime}"
    if len(got) != len(expected):
        return {"ok": False, "message": f"{who}: {len(got)} outputs vs {len(expected)}"}
    per_output, worst, ok = [], 0.0, True
    for d, g, e, name in zip(details, got, expected, names):
        if g.shape != e.shape:
            return {
                "ok": False,
                "message": f"{who}: output {name} has shape {list(g.shape)} vs {list(e.shape)}",
            }
        diff = float(np.max(np.abs(g.astype(np.float64) - e.astype(np.float64)))) if g.size else 0.0
        if np.issubdtype(g.dtype, np.integer):
            unit, value, bound = "LSB", diff, float(max_lsb)
        else:
            scale = float(np.max(np.abs(e))) if e.size else 0.0
            unit, value, bound = "relative", diff / scale if scale else diff, max_lsb / 256.0
        per_output.append({"name": d["name"], "unit": unit, "max_diff": value, "bound": bound})
        ok = ok and value <= bound
        worst = max(worst, value) if unit == "LSB" else worst
    lsb = [o for o in per_output if o["unit"] == "LSB"]
    summary = ", ".join(
        "{} {:.4g} {}".format(o["name"], o["max_diff"], o["unit"]) for o in per_output
    )
    return {
        "ok": ok,
        "max_lsb_diff": worst if lsb else None,
        "bound_lsb": float(max_lsb),
        "device_runtime": device_runtime,
        "reference_runtime": reference_runtime,
        "outputs": per_output,
        "message": "{}: {} ({}; bound {:g} LSB)".format(
            who, "within bound" if ok else "OVER BOUND", summary, max_lsb
        ),
    }


def _signature_tensors(interpreter, kind):
    """{name: tensor index} of the model's first signature (outputs are read by name), else the
    tensor names of a signature-less model."""
    sigs = interpreter._get_full_signature_list() or {}  # private, but public since TF 2.5
    if sigs:
        return dict(sigs[sorted(sigs)[0]][kind])
    details = (
        interpreter.get_input_details() if kind == "inputs" else interpreter.get_output_details()
    )
    return {d["name"]: d["index"] for d in details}


def make_chain(body, tail):
    """A function running the postprocess model on the body's outputs, by name: each body output
    is dequantized (or requantized) into the tail input of the same name."""
    by_index = {d["index"]: d for d in body.get_tensor_details()}
    tail_details = {d["index"]: d for d in tail.get_tensor_details()}
    outs = _signature_tensors(body, "outputs")
    links = []
    for name, t_index in sorted(_signature_tensors(tail, "inputs").items()):
        if name not in outs:
            raise RunnerError(
                "postprocess input '{}' is not a body output (body outputs: {})".format(
                    name, ", ".join(sorted(outs))
                )
            )
        links.append((by_index[outs[name]], tail_details[t_index]))

    def run_tail():
        for src, dst in links:
            value = body.get_tensor(src["index"])
            scale, zero = src["quantization"]
            if scale:
                value = scale * (value.astype(np.int64) - zero)
            dscale, dzero = dst["quantization"]
            if dscale:
                info = np.iinfo(dst["dtype"])
                value = np.clip(np.round(value / dscale) + dzero, info.min, info.max)
            tail.set_tensor(dst["index"], value.astype(dst["dtype"]))
        tail.invoke()

    return run_tail


def _timed_loop(invoke, min_runs, min_secs, max_secs):
    samples = []
    start = time.perf_counter()
    while True:
        now = time.perf_counter()
        if len(samples) >= min_runs and now - start >= min_secs:
            break
        if now - start > max_secs:
            break
        t0 = time.perf_counter()
        invoke()
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def benchmark(
    model_path,
    runtime="auto",
    num_threads=None,
    xnnpack=True,
    edgetpu=False,
    num_runs=_D["num_runs"],
    min_secs=_D["min_secs"],
    max_secs=_D["max_secs"],
    warmup_runs=_D["warmup_runs"],
    warmup_min_secs=_D["warmup_min_secs"],
    seed=_D["seed"],
    golden=None,
    golden_atol=0.0,
    save_output=None,
    reference=None,
    reference_runtime="reference",
    parity_lsb=_D["parity_lsb"],
    postprocess=None,
):
    """Measures invoke latency of one model. Returns a JSON-serializable dict.

    `postprocess`: a float .tflite run on the CPU after the body (outputs matched by name):
    `latency_ms` stays the body alone; `postprocess.latency_ms` is body + postprocess end to end.

    `golden`: a .npy of the expected output 0 for the seeded inputs; a mismatch is reported in
    `golden_check` so a delegate that silently computes wrong results is caught.
    `save_output`: writes output 0 for the seeded inputs as .npy (to make a golden file).
    `reference`: a .npz of all outputs from another runtime (the host's LiteRT) for the same
    seeded inputs; the difference is reported in LSBs in `parity` and fails over `parity_lsb`.
    Under emulation the timings are kept apart under `emulated`, never as `latency_ms`.
    """
    t0 = time.perf_counter()
    interpreter, info = make_interpreter(model_path, runtime, num_threads, xnnpack, edgetpu)
    init_ms = (time.perf_counter() - t0) * 1e3
    for detail, value in zip(interpreter.get_input_details(), random_inputs(interpreter, seed)):
        interpreter.set_tensor(detail["index"], value)
    t0 = time.perf_counter()
    interpreter.invoke()
    first_ms = (time.perf_counter() - t0) * 1e3
    golden_check = check_golden(interpreter, golden, golden_atol) if golden else None
    runtime_text = "{} {}".format(info["runtime"], info["runtime_version"])
    parity = (
        check_parity(interpreter, reference, parity_lsb, runtime_text, reference_runtime)
        if reference
        else None
    )
    if save_output:
        np.save(save_output, interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    warm = _timed_loop(interpreter.invoke, warmup_runs, warmup_min_secs, max_secs)
    samples = _timed_loop(interpreter.invoke, num_runs, min_secs, max_secs)
    chained = None
    if postprocess:
        tail, _ = make_interpreter(postprocess, runtime, num_threads, xnnpack, False)
        run_tail = make_chain(interpreter, tail)

        def end_to_end():
            interpreter.invoke()
            run_tail()

        _timed_loop(end_to_end, warmup_runs, warmup_min_secs, max_secs)
        e2e = _timed_loop(end_to_end, num_runs, min_secs, max_secs)
        chained = {
            "model": os.path.basename(postprocess),
            "model_sha256": sha256_file(postprocess),
            "latency_ms": summarize(e2e),
            "body_latency_ms": summarize(samples),
            "samples_ms": _thin(e2e),
        }
    environment = collect_environment()
    warnings = []
    cores = environment["cores"]
    over = bool(num_threads and cores and int(num_threads) > cores)
    if over:
        warnings.append(
            f"--threads={int(num_threads)} is more than the {cores} cores here: threads "
            f"time-share cores, so this latency is not the {int(num_threads)}-thread figure"
        )
    timing = {
        "init_ms": init_ms,
        "first_invoke_ms": first_ms,
        "warmup": summarize(warm),
        "latency_ms": summarize(samples),
        "measured_secs": sum(samples) / 1e3,
        "samples_ms": _thin(samples),
    }
    result = dict(info)
    result.update(
        {
            "model": os.path.basename(model_path),
            "model_sha256": sha256_file(model_path),
            "golden_check": golden_check,
            "parity": parity,
            "environment": environment,
            "threads_over_cores": over,
            "warnings": warnings,
            "timestamp": time.time(),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "settings": {
                "num_runs": num_runs,
                "min_secs": min_secs,
                "max_secs": max_secs,
                "warmup_runs": warmup_runs,
                "warmup_min_secs": warmup_min_secs,
                "seed": seed,
            },
        }
    )
    if environment["emulated"]:
        # An emulator's timings are not a board's: keep them for the functional record only.
        result["emulated"] = dict(timing, label=EMULATED_LABEL, reason=environment["emulated"])
        timing = dict((k, None) for k in timing)
    else:
        result["emulated"] = None
    result.update(timing)
    if chained is not None and environment["emulated"]:
        chained = dict(chained, label=EMULATED_LABEL)
    result["postprocess"] = chained
    return result


def make_parser():
    """The runner's command line (what remote.Settings.runner_args produces)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("--runtime", default="auto", choices=("auto",) + RUNTIMES)
    parser.add_argument(
        "--list_runtimes",
        action="store_true",
        help="print the installed runtimes and the environment, then exit",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no_xnnpack", action="store_true")
    parser.add_argument("--edgetpu", action="store_true")
    parser.add_argument("--num_runs", type=int, default=_D["num_runs"])
    parser.add_argument("--min_secs", type=float, default=_D["min_secs"])
    parser.add_argument("--max_secs", type=float, default=_D["max_secs"])
    parser.add_argument("--warmup_runs", type=int, default=_D["warmup_runs"])
    parser.add_argument("--warmup_min_secs", type=float, default=_D["warmup_min_secs"])
    parser.add_argument("--seed", type=int, default=_D["seed"])
    parser.add_argument("--golden", default=None)
    parser.add_argument("--golden_atol", type=float, default=0.0)
    parser.add_argument("--save_output", default=None)
    parser.add_argument("--reference", default=None, help=".npz of a reference runtime's outputs")
    parser.add_argument("--reference_runtime", default="reference")
    parser.add_argument("--parity_lsb", type=float, default=_D["parity_lsb"])
    parser.add_argument("--environment_only", action="store_true")
    parser.add_argument(
        "--image", default=None, help="a .npy of uint8 pixels to classify instead of benchmarking"
    )
    parser.add_argument(
        "--preprocessing",
        default=None,
        help="the bundle's preprocessing.json (default: the spec embedded in the model)",
    )
    parser.add_argument(
        "--postprocess", default=None, help="a float .tflite run on the body's outputs (by name)"
    )
    return parser


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.environment_only:
        print(json.dumps(collect_environment()))
        return 0
    if args.list_runtimes:
        print(
            json.dumps(
                {
                    "runtimes": installed_runtimes(),
                    "edgetpu": edgetpu_available(),
                    "environment": collect_environment(),
                }
            )
        )
        return 0
    if not args.model:
        parser.error("a model is required")
    bad = setting_problems(vars(args))
    if bad:  # the host checks these too; a command typed on a board is checked here
        print(
            json.dumps({"error": "bad benchmark setting(s): " + "; ".join(bad), "kind": "runner"})
        )
        return 2
    if args.image:
        try:
            print(
                json.dumps(
                    run_image(
                        args.model, args.image, args.preprocessing, args.runtime, args.threads
                    )
                )
            )
        except RunnerError as e:
            print(json.dumps({"error": str(e), "kind": "runner"}))
            return 2
        return 0
    try:
        result = benchmark(
            args.model,
            args.runtime,
            args.threads,
            not args.no_xnnpack,
            args.edgetpu,
            args.num_runs,
            args.min_secs,
            args.max_secs,
            args.warmup_runs,
            args.warmup_min_secs,
            args.seed,
            args.golden,
            args.golden_atol,
            args.save_output,
            args.reference,
            args.reference_runtime,
            args.parity_lsb,
            args.postprocess,
        )
    except RunnerError as e:
        print(json.dumps({"error": str(e), "kind": "runner"}))
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
