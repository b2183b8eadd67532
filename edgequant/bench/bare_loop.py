"""The bare invoke loop the benchmark harness is checked against (benchmarks/*_overhead.py).

Deliberately independent of device_runner.py: it is the yardstick, so it shares none of the
harness's code. It is a script text, run as `python -c SCRIPT MODEL THREADS SECS` on the host or
on a board over SSH (Python 3.7 + numpy + the runtime), and prints the p50 in ms: five warm-up
invokes, then at least 100 timed invokes and at least SECS seconds.
"""

from __future__ import annotations

_SCRIPT = """
import sys, time, numpy as np
from {module} import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=int(sys.argv[2])); it.allocate_tensors()
for d in it.get_input_details():
    info = np.iinfo(d["dtype"]) if np.issubdtype(d["dtype"], np.integer) else None
    x = np.random.RandomState(0).randint(info.min, info.max + 1, d["shape"]).astype(d["dtype"]) if info else np.random.rand(*d["shape"]).astype(d["dtype"])
    it.set_tensor(d["index"], x)
for _ in range(5): it.invoke()
t = []
end = time.perf_counter() + float(sys.argv[3])
while time.perf_counter() < end or len(t) < 100:
    t0 = time.perf_counter(); it.invoke(); t.append((time.perf_counter() - t0) * 1e3)
t.sort(); print(t[len(t) // 2])
"""

MODULES = {"litert": "ai_edge_litert.interpreter", "tflite_runtime": "tflite_runtime.interpreter"}


def script(runtime: str) -> str:
    """The loop's source for `runtime` ("litert" or "tflite_runtime")."""
    return _SCRIPT.format(module=MODULES[runtime])
