# %% [markdown]
# # When quantization costs accuracy: diagnose, then recover
#
# Per-tensor weights and a tiny calibration set are the usual suspects. This notebook measures the
# damage per layer with TFLite's QuantizationDebugger, keeps the worst layers in float (CPU only),
# recovers with quantization-aware training (tfmot), and lets the recovery ladder pick the cheapest
# fix that meets an accuracy budget.

# %% tags=["setup"]
# Set-up (Colab: clone and install the pinned requirements; locally: the workspace root):
# dev/make_notebooks.py puts notebooks/src/_setup.py here.

# %% tags=["parameters"]
# Parameters
epochs = 30
qat_epochs = 3
workdir = "runs/nb02_qat"
overrides = {}  # any config key, e.g. {"model.options.dense_units": 64}; CI shrinks the model

# %%
from edgequant import pipeline, workspace

mnist_autoquant = workspace.config_module("mnist_autoquant")
mnist_qat = workspace.config_module("mnist_qat")

config = mnist_qat.get_config()
config.train.epochs = epochs
config.qat.epochs = qat_epochs
config.qat.nbit = ()
config.quantize.weights = "per_tensor"  # the harder setting
config.quantize.calibration_size = 8
config.quantize.aeq_recipes = ("static_wi8_ai8",)
config.bench.min_secs = 0.2
config.update_from_flattened_dict(overrides)
result = pipeline.run(config, workdir, verbose=2)
result["warnings"]

# %% [markdown]
# ## The comparison, with mixed-precision (`mixed_k*`) and QAT (`qat_*`) variants

# %%
from IPython.display import Image, display

import edgequant

print(edgequant.summary(result))

# %% [markdown]
# ## Which layers does 8-bit hurt most?
# RMSE divided by the quantization scale: about 0.29 steps is the rounding floor.

# %%
print(result["diagnosis"]["summary"])
display(Image(filename=f"{workdir}/layer_errors.png"))
print(result["diagnosis"]["edgetpu_note"])

# %% [markdown]
# ## QAT: does the converted model behave like the Keras model?

# %%
result["qat"]["parity"]

# %% [markdown]
# ## Let the recovery ladder find the cheapest variant within the budget
# Cheapest rung first (more calibration data, the other weight granularity, QAT), each judged on
# the validation split; every trial is recorded in `deploy.json`'s `recovery`.

# %%
search = mnist_autoquant.get_config()
search.train.epochs = epochs
search.recovery.qat_epochs = qat_epochs
search.bench.min_secs = 0.2
search.update_from_flattened_dict(overrides)
found = pipeline.run(search, workdir + "_search", verbose=0)
print("recommended:", found["recommended"])
[(t["step"], t["name"], t.get("on_validation") or t.get("error")) for t in found["recovery"]]
