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
import json
import math
import os
import platform
import sys
import time

import numpy as np

RUNTIMES = ("litert", "tflite_runtime", "tf")
EDGETPU_LIB = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


class RunnerError(Exception):
    """An expected failure with a one-line message (missing runtime, bad model, ...)."""


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
                from importlib import metadata

                version = metadata.version("ai-edge-litert")
            except Exception:  # noqa: BLE001 - version is informative only
                version = "unknown"
            return mod, "ai-edge-litert " + version
        if runtime == "tflite_runtime":
            from tflite_runtime import interpreter as mod
            import tflite_runtime

            return mod, "tflite-runtime " + getattr(tflite_runtime, "__version__", "unknown")
        if runtime == "tf":
            import tensorflow as tf

            return tf.lite, "tensorflow " + tf.__version__
    except ImportError as e:
        raise RunnerError("runtime %r is not installed here (%s)" % (runtime, e))
    raise RunnerError("unknown runtime %r; choose one of %s" % (runtime, ", ".join(RUNTIMES)))


def make_interpreter(model_path, runtime="auto", num_threads=None, xnnpack=True, edgetpu=False):
    """Builds an allocated interpreter. Returns (interpreter, info dict).

    `xnnpack=False` builds the interpreter without default delegates (XNNPACK is applied by
    default in LiteRT and TF >= 2.x). `edgetpu=True` uses pycoral's make_interpreter when
    present, else load_delegate('libedgetpu.so.1'); a missing delegate is a RunnerError.
    """
    if not os.path.isfile(model_path):
        raise RunnerError("model not found: %s" % model_path)
    mod, version = _import_runtime(runtime)
    info = {"runtime": version.split(" ")[0], "runtime_version": version.split(" ")[-1],
            "num_threads": num_threads, "xnnpack": bool(xnnpack), "delegate": None}
    kwargs = {"model_path": model_path}
    if num_threads is not None:
        kwargs["num_threads"] = int(num_threads)
    if edgetpu:
        lib = EDGETPU_LIB.get(platform.system(), "libedgetpu.so.1")
        try:
            delegate = mod.load_delegate(lib)
        except (ValueError, OSError, AttributeError) as e:
            raise RunnerError("Edge TPU delegate %s could not be loaded (%s); install libedgetpu "
                              "and check the accelerator is connected" % (lib, e))
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
        raise RunnerError("cannot load model %s: %s" % (model_path, msg))
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


def percentile(sorted_samples, p):
    """Nearest-rank percentile of an ascending list (p in [0, 100])."""
    if not sorted_samples:
        return float("nan")
    k = max(1, int(math.ceil(p / 100.0 * len(sorted_samples))))
    return sorted_samples[min(k, len(sorted_samples)) - 1]


def summarize(samples_ms):
    """n, min, p50, p90, p95, p99, max, mean, std (population) of samples in milliseconds."""
    s = sorted(samples_ms)
    n = len(s)
    mean = sum(s) / n if n else float("nan")
    std = math.sqrt(sum((x - mean) ** 2 for x in s) / n) if n else float("nan")
    out = {"n": n, "min": s[0] if n else float("nan"), "max": s[-1] if n else float("nan"),
           "mean": mean, "std": std, "percentile_method": "nearest-rank"}
    for p in (50, 90, 95, 99):
        out["p%d" % p] = percentile(s, p)
    return out


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


def benchmark(model_path, runtime="auto", num_threads=None, xnnpack=True, edgetpu=False,
              num_runs=100, min_secs=2.0, max_secs=60.0, warmup_runs=5, warmup_min_secs=0.5,
              seed=0):
    """Measures invoke latency of one model. Returns a JSON-serializable dict."""
    t0 = time.perf_counter()
    interpreter, info = make_interpreter(model_path, runtime, num_threads, xnnpack, edgetpu)
    init_ms = (time.perf_counter() - t0) * 1e3
    for detail, value in zip(interpreter.get_input_details(), random_inputs(interpreter, seed)):
        interpreter.set_tensor(detail["index"], value)
    t0 = time.perf_counter()
    interpreter.invoke()
    first_ms = (time.perf_counter() - t0) * 1e3
    warm = _timed_loop(interpreter.invoke, warmup_runs, warmup_min_secs, max_secs)
    samples = _timed_loop(interpreter.invoke, num_runs, min_secs, max_secs)
    result = dict(info)
    result.update({
        "model": os.path.basename(model_path),
        "init_ms": init_ms,
        "first_invoke_ms": first_ms,
        "warmup": summarize(warm),
        "latency_ms": summarize(samples),
        "samples_ms": samples,
        "settings": {"num_runs": num_runs, "min_secs": min_secs, "max_secs": max_secs,
                     "warmup_runs": warmup_runs, "warmup_min_secs": warmup_min_secs,
                     "seed": seed},
        "python": platform.python_version(),
        "numpy": np.__version__,
    })
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--runtime", default="auto", choices=("auto",) + RUNTIMES)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no_xnnpack", action="store_true")
    parser.add_argument("--edgetpu", action="store_true")
    parser.add_argument("--num_runs", type=int, default=100)
    parser.add_argument("--min_secs", type=float, default=2.0)
    parser.add_argument("--max_secs", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        result = benchmark(args.model, args.runtime, args.threads, not args.no_xnnpack,
                           args.edgetpu, args.num_runs, args.min_secs, args.max_secs,
                           seed=args.seed)
    except RunnerError as e:
        print(json.dumps({"error": str(e)}))
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
