# %% [markdown]
# # Your model, your data
#
# Bring a trained Keras model (Keras 3 or tf_keras `.keras`, legacy `.h5`, a SavedModel folder or a
# float `.tflite`) and your own data (an image folder with one subfolder per class, a flat folder,
# `.npy`/`.npz`, TFRecord, or a Python generator). `edgequant.deploy` calibrates on your data,
# evaluates every variant against your float model, recovers accuracy when plain int8 falls short,
# checks the Edge TPU mapping, and writes a bundle with `deploy.json` and a report. The same run is
# `python tools/deploy.py --model=... --data=... --out_dir=...`.

# %% tags=["setup"]
# Set-up (Colab: clone and install the pinned requirements; locally: the workspace root):
# dev/make_notebooks.py puts notebooks/src/_setup.py here.

# %% tags=["parameters"]
# Parameters: point these at your own model and data. Empty = a small demo model and
# a PNG folder made here from real MNIST digits.
model_path = ""
data_dir = ""
input_range = "0,1"  # how your model expects pixels
target = "edgetpu"  # or "cpu"
epochs = 3
bench_min_secs = 1.0
workdir = "runs/nb04_your_model"
overrides = {}  # any config key, e.g. {"budget.max_drop_pp": 2.0}

# %%
from pathlib import Path

work = Path(workdir)
if not model_path or not data_dir:
    import keras

    from edgequant.data.folders import write_image_folder
    from edgequant.datasets import mnist

    digits = mnist.read(download=False)  # the 5,000 offline digits: train and test
if not model_path:  # a Keras 3 model, trained and saved the way TF 2.16+ saves it
    keras.utils.set_random_seed(0)
    demo = keras.Sequential(
        [
            keras.Input((28, 28, 1), name="image"),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax", name="digit"),
        ]
    )
    demo.compile("adam", "sparse_categorical_crossentropy")
    demo.fit(digits.train.x[..., None] / 255.0, digits.train.y, epochs=epochs, verbose=0)
    model_path = str(work / "digits.keras")
    work.mkdir(parents=True, exist_ok=True)
    demo.save(model_path)
if not data_dir:  # PNG class folders, as a user would have them
    data_dir = str(work / "images")
    if not Path(data_dir).is_dir():
        write_image_folder(data_dir, digits.test.x, digits.test.y)
print(model_path, data_dir)

# %% [markdown]
# No default dataset, no silent guess: without `input_range` (or `mean`/`std`) a model that does
# not start with its own Rescaling layer is refused, because calibrating on the wrong pixel range
# converts cleanly and fails in the field.

# %%
import edgequant

result = edgequant.deploy(
    model_path,
    data_dir,
    work / "bundle",
    input_range=input_range,
    target=target,
    **{"bench.min_secs": bench_min_secs, **overrides},
)
print(edgequant.summary(result))

# %% [markdown]
# Without a device the variants are ranked by this machine's CPU latency, which is not your
# board's: `device="coral-1"` (a `configs/devices.toml` name) or `device="mendel@192.0.2.7:22"`
# times every variant on the board over SSH (`ssh_config=`, `remote_python=` as in
# `tools/benchmark.py`), and the first device named ranks them. A device that fails is one line
# in `result["errors"]`; every other result is still written.

# %%
print(result["ranked_by"])

# %% [markdown]
# `deploy.json` holds what the report shows: the model's named inputs and outputs, the
# preprocessing, where calibration and evaluation data came from, and per variant its
# weights/activations precision, accuracy, fidelity per output (SQNR, cosine, agreement), the Edge
# TPU gate and mapping, and latency (host, and per device when one is named).

# %%
for v in result["variants"]:
    print(
        v["name"],
        v["weights"],
        v["activations"],
        v["gate"],
        v["edgetpu"] and (v["edgetpu"]["mapped"], v["edgetpu"]["total"]),
        v["metrics"].get("sqnr_db"),
    )
print("calibration:", result["calibration"])
print("evaluation:", result["evaluation"])

# %%
from edgequant.data import preprocess

bundle = work / "bundle"
name = result["recommended"] or result["variants"][0]["name"]
# The model carries its input contract: the spec is embedded in the .tflite metadata.
print(preprocess.read_embedded((bundle / f"{name}.tflite").read_bytes()))
from IPython.display import Markdown

Markdown((bundle / "report.md").read_text())
