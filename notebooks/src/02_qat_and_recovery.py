# %% [markdown]
# # When quantization costs accuracy: diagnose, then recover
#
# Per-tensor weights and a tiny calibration set are the usual suspects. This notebook measures the
# damage per layer with TFLite's QuantizationDebugger, keeps the worst layers in float (CPU only),
# recovers with quantization-aware training (tfmot), and lets the accuracy-targeted search pick the
# cheapest fix.

# %% tags=["setup"]
# Set-up (Colab: clone and install the pinned requirements; locally: the workspace root):
# dev/make_notebooks.py puts notebooks/src/_setup.py here.

# %% tags=["parameters"]
# Parameters
epochs = 30
qat_epochs = 3
workdir = "runs/nb02_qat"

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
results = pipeline.run(config, workdir, verbose=2)
results.get("calibration_warnings")

# %% [markdown]
# ## The comparison, with mixed-precision (`mixed_k*`) and QAT (`qat_*`) variants

# %%
from IPython.display import Image, Markdown, display

from edgequant.report import markdown

display(Markdown(markdown.summary_table(results)))

# %% [markdown]
# ## Which layers does 8-bit hurt most?
# RMSE divided by the quantization scale: about 0.29 steps is the rounding floor.

# %%
print(results["diagnosis"]["summary"])
display(Image(filename=f"{workdir}/layer_errors.png"))
print(results["diagnosis"]["edgetpu_note"])

# %% [markdown]
# ## QAT: does the converted model behave like the Keras model?

# %%
results["qat"]["parity"]

# %% [markdown]
# ## Let the search find the cheapest recipe within the target
# Judged on the validation split; every trial is logged to `autoquant.jsonl`.

# %%
search = mnist_autoquant.get_config()
search.train.epochs = epochs
search.autoquant.qat_epochs = qat_epochs
search.bench.min_secs = 0.2
found = pipeline.run(search, workdir + "_search", verbose=0)
print(found["autoquant"]["summary"])
[(t["step"], round(t["drop_pp"], 2)) for t in found["autoquant"]["trials"]]
