# %% [markdown]
# # Edge TPU export, checks, compilation and device benchmarks
#
# A full-integer uint8 model, the Edge TPU gate and mapping prediction, compilation when
# `edgetpu_compiler` is installed, and latency on a board over SSH.

# %% tags=["setup"]
# Set-up (Colab: clone and install the pinned requirements; locally: the workspace root):
# dev/make_notebooks.py puts notebooks/src/_setup.py here.

# %% tags=["parameters"]
# Parameters
epochs = 12
workdir = "runs/nb03_edgetpu"
device = ""  # inventory name or user@host:port; empty = skip
ssh_config = ""
remote_python = ""
bench_min_secs = 2.0
overrides = {}  # any config key, e.g. {"model.options.alpha": 0.35}; CI shrinks the model

# %%
from edgequant import pipeline, workspace

mnist_edgetpu = workspace.config_module("mnist_edgetpu")

config = mnist_edgetpu.get_config()
config.train.epochs = epochs
config.quantize.recipes = ("uint8",)
config.quantize.aeq_recipes = ()  # the AI Edge Quantizer keeps float I/O: not for the Edge TPU
config.bench.min_secs = bench_min_secs
config.update_from_flattened_dict(overrides)
result = pipeline.run(config, workdir, verbose=2)
uint8 = next(v["path"] for v in result["variants"] if v["name"] == "uint8")
uint8

# %% [markdown]
# ## The full-integer gate
# Every tensor 8-bit (int32 bias), uint8 I/O, static shapes, batch 1, op versions the compiler can
# parse. A float-I/O variant is refused with reasons:

# %%
from edgequant import edgetpu

print(edgetpu.check_full_integer(uint8).summary())

# %% [markdown]
# ## Which ops will the compiler map?
# Predicted on the dataflow graph: the first op that cannot be mapped cuts the graph, and
# everything downstream runs on the CPU.

# %%
analysis = edgetpu.analyze(uint8)
print(analysis.mapped_count, "of", len(analysis.ops), "ops on the Edge TPU")
print(analysis.advice)

# %% [markdown]
# ## Compile (x86-64 Debian with Coral's `edgetpu-compiler` package)
# Without the compiler the result says so and the prediction above stands.

# %%
result = edgetpu.compile_model(uint8, f"{workdir}/edgetpu")
print(result.status, "-", result.reason)

# %% [markdown]
# ## Benchmark on a device over SSH
# Devices live in `configs/devices.toml`:
#
# ```toml
# [devices.coral-devboard]
# ssh = "mendel@coral-devboard"   # ~/.ssh/config alias or user@host:port
# python = "/usr/bin/python3"     # numpy<2 + tflite-runtime on the board
# workdir = "~/.cache/edgequant"  # models cached by sha256
# edgetpu = true
# ```
#
# Host keys are checked as your ssh is configured; results are appended to a JSONL store as they
# finish.

# %%
from edgequant.bench import compare, device_runner, fleet, inventory, remote

host = device_runner.benchmark(uint8, "litert", 1, min_secs=bench_min_secs)
records = [host]
if device:
    dev = inventory.resolve(device, "configs/devices.toml", remote_python or None)
    records += fleet.run_fleet(
        [uint8],
        [dev],
        remote.Settings(min_secs=bench_min_secs),
        f"{workdir}/devices.jsonl",
        ssh_config or None,
    )
else:
    print("no device given: host only")
print(compare.table(records))
