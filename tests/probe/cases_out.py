"""Probe cases over output folders, model files and flags (see case.py for the fields)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests import memcap
from tests.probe.case import Case
from tests.probe.kit import FAST, copy_bundle

M = "--model={k}/cnn.keras"
DATA = "--data={k}/data.npz"
OUT = "--out_dir={d}/out"


def deploy(
    *extra: str, model: str = M, data: str = DATA, out: str = OUT, recipes: str = "fp32,int8"
) -> tuple[str, ...]:
    return (model, data, out, *FAST, f"--config.quantize.recipes={recipes}", *extra)


def bundle_written(d: Path, o) -> str | None:
    """A success must leave a bundle that says what it is."""
    return None if (d / "out" / "deploy.json").is_file() else "exit 0 but no out/deploy.json"


def _says_unused_budget(d: Path, o) -> str | None:
    """A top-1 budget on unlabelled data cannot judge anything: the run must say so."""
    said = "budget.max_drop_pp=0.5 is not used"
    if said not in o.stdout:
        return f"exit 0 but stdout does not say '{said}'"
    in_bundle = said in (d / "out" / "deploy.json").read_text()
    return None if in_bundle else "deploy.json does not say it"


def _previous(d: Path, kit) -> None:
    copy_bundle(kit, d / "out")


def _files(d: Path, names: dict[str, str]) -> None:
    for name, text in names.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)


def _workdir(d: Path, kit) -> None:
    (d / "work" / "tensorboard").mkdir(parents=True)
    shutil.copy(kit.root / "cnn.keras", d / "work" / "float.keras")
    _files(d, {"work/history.json": "{}", "work/tensorboard/events": "x"})


def _copy_images(d: Path, kit) -> None:
    shutil.copytree(kit.root / "images", d / "images")


def _stale_gone(d: Path, o) -> str | None:
    left = {p.name for p in (d / "out").iterdir()}
    return "int8.tflite of the previous run is still there" if "int8.tflite" in left else None


def outputs() -> list[Case]:
    c = "outputs"
    return [
        Case("out-user-folder-with-manifest", c, "deploy", deploy(), setup=lambda d, k: _files(
            d, {"out/thesis.tex": "precious", "out/manifest.json": "{}"}),
            issue="--out_dir holding the user's files and a manifest.json is replaced"),
        Case("out-is-the-models-workdir", c, "deploy",
             deploy(model="--model={d}/work/float.keras", out="--out_dir={d}/work"),
             setup=_workdir, out="work",
             issue="--model=D/float.keras --out_dir=D deletes the model and history"),
        Case("out-sibling-named-like-a-dead-run", c, "deploy", deploy(), exits=(0,),
             setup=lambda d, k: (_previous(d, k), _files(
                 d, {"out.previous-20240105/thesis.tex": "precious"})),
             check=bundle_written, issue="bundle.previous-20240105 beside --out_dir removed"),
        Case("out-failing-rerun-keeps-bundle", c, "deploy", deploy(model="--model={k}/nan.keras"),
             setup=_previous, issue="a failing re-run (NaN weights) replaced the good bundle"),
        Case("out-is-a-mount-point", c, "deploy", deploy(), exits=(0,), tmpfs="{d}/out",
             issue="an --out_dir that is a mount point fails at the rename (EBUSY)"),
        Case("out-is-a-file", c, "deploy", deploy(), setup=lambda d, k: _files(d, {"out": "x"}),
             needles=("out",)),
        Case("out-is-a-dangling-symlink", c, "deploy", deploy(),
             setup=lambda d, k: os.symlink(d / "nowhere", d / "out")),
        Case("out-inside-the-data-folder", c, "deploy",
             deploy(data="--data={d}/images", out="--out_dir={d}/images/out"),
             setup=_copy_images, out="images/out"),
        Case("out-is-the-data-folder", c, "deploy",
             deploy(data="--data={d}/images", out="--out_dir={d}/images"),
             setup=_copy_images, out="images"),
        Case("out-holds-the-model", c, "deploy", deploy(model="--model={d}/m/cnn.keras",
             out="--out_dir={d}/m"), out="m", setup=lambda d, k: (d.joinpath("m").mkdir(),
             shutil.copy(k.root / "cnn.keras", d / "m"))),
        Case("out-missing-parents-are-made", c, "deploy", deploy(out="--out_dir={d}/a/b/out"),
             exits=(0,), good="accepted", out="a/b/out",
             check=lambda d, o: None if (d / "a/b/out/deploy.json").is_file() else "no bundle"),
        Case("out-empty-folder-is-used", c, "deploy", deploy(), exits=(0,), good="accepted",
             setup=lambda d, k: (d / "out").mkdir(), check=bundle_written),
        Case("out-rerun-drops-stale-variants", c, "deploy",
             deploy(recipes="fp32"), exits=(0,), setup=_previous,
             check=_stale_gone),
        Case("out-user-file-added-to-a-bundle", c, "deploy", deploy(), setup=lambda d, k: (
             _previous(d, k), _files(d, {"out/my_notes.txt": "mine"}))),
        Case("out-symlink-to-empty-folder", c, "deploy", deploy(), exits=(0,), good="accepted",
             setup=lambda d, k: ((d / "real").mkdir(), os.symlink(d / "real", d / "out")),
             check=lambda d, o: None if (d / "real/deploy.json").is_file() else "not in place"),
        Case("out-evaluate-json-is-a-folder", c, "evaluate", ("--model={k}/bundle/fp32.tflite",
             "--data={k}/images", "--output_json={d}/res"), setup=lambda d, k: (d / "res").mkdir(),
             needles=("output_json",)),
        Case("out-quantize-out-is-a-file", c, "quantize", (M, "--recipe=fp32", DATA,
             "--input_range=0,1", OUT), setup=lambda d, k: _files(d, {"out": "x"})),
        Case("out-benchmark-json-under-a-file", c, "benchmark", ("--model={k}/bundle/fp32.tflite",
             "--num_runs=2", "--min_secs=0", "--output_json={d}/afile/x.json"),
             setup=lambda d, k: _files(d, {"afile": "x"}), needles=("afile",)),
    ]  # fmt: skip


def models() -> list[Case]:
    c = "models"

    def junk(name: str, data: bytes):
        return lambda d, k: (d / name).write_bytes(data)

    def truncated(d: Path, kit) -> None:
        (d / "t.tflite").write_bytes((kit.root / "bundle" / "fp32.tflite").read_bytes()[:400])

    def no_metadata(d: Path, kit) -> None:
        import zipfile

        with zipfile.ZipFile(d / "m.keras", "w") as z:
            z.writestr("config.json", "{}")

    return [
        Case("model-h5-lambda-deploy", c, "deploy", deploy(model="--model={k}/lambda.h5"),
             needles=("lambda.h5",), issue="a legacy .h5 with a Lambda layer runs its code"),
        Case("model-h5-lambda-edgetpu-fix", c, "edgetpu_fix", ("--model={k}/lambda.h5",
             "--out={d}/fixed.h5"), out=None, needles=("lambda.h5",),
             issue="the same .h5 Lambda in edgetpu_fix.py"),
        Case("model-keras3-lambda", c, "deploy", deploy(model="--model={k}/lambda.keras"),
             needles=("lambda.keras",), issue="the same layer in a .keras is refused"),
        Case("model-metadata-bomb", c, "deploy", deploy(model="--model={k}/bomb.keras"),
             needles=("metadata.json",), issue="a .keras whose metadata.json inflates to GiBs"),
        Case("model-quantized-tflite-as-float", c, "deploy",
             deploy(model="--model={k}/bundle/int8.tflite"), needles=("float",),
             issue="an already quantized .tflite is taken as the float reference"),
        Case("model-float-tflite-no-recipe", c, "deploy", deploy(
             model="--model={k}/bundle/fp32.tflite"), needles=("aeq",),
             issue="a float .tflite with no recipes: 'no variant meets the budget'"),
        Case("model-outputs-nan", c, "deploy", deploy(model="--model={k}/nan.keras"),
             needles=("nan",), issue="a model that outputs NaN: 'no variant meets the budget'"),
        Case("model-integer-input", c, "deploy", deploy(model="--model={k}/ints_sm"),
             needles=("ids",), issue="an integer-input model: 'no variant meets the budget'"),
        Case("model-huge-input", c, "deploy", deploy("--input_range=0,1",
             model="--model={k}/huge.keras", data="--data={k}/images"),
             needles=("memory",), memory_cap=4 << 30, issue="a 1x4096x4096x3 model is not "
             "refused (under a memory cap it deadlocks)", open="" if memcap.available() else
             "no writable cgroup memory hierarchy here to cap the run with"),
        Case("model-missing", c, "deploy", deploy(model="--model={d}/nope.keras"),
             needles=("nope.keras",)),
        Case("model-empty-file", c, "deploy", deploy(model="--model={d}/e.keras"),
             setup=junk("e.keras", b""), needles=("e.keras",)),
        Case("model-folder-not-savedmodel", c, "deploy", deploy(model="--model={d}/dir"),
             setup=lambda d, k: (d / "dir").mkdir(), needles=("dir",)),
        Case("model-junk-keras", c, "deploy", deploy(model="--model={d}/j.keras"),
             setup=junk("j.keras", b"PK not a zip" * 9), needles=("j.keras",)),
        Case("model-keras-without-metadata", c, "deploy", deploy(model="--model={d}/m.keras"),
             setup=no_metadata, needles=("m.keras",)),
        Case("model-truncated-tflite-evaluate", c, "evaluate", ("--model={d}/t.tflite",
             DATA), setup=truncated, needles=("t.tflite",), out=None),
        Case("model-junk-tflite-benchmark", c, "benchmark", ("--model={d}/j.tflite",
             "--num_runs=2", "--min_secs=0"), setup=junk("j.tflite", b"TFL3" + b"\0" * 64),
             needles=("j.tflite",), out=None),
        Case("model-tf-keras-h5-deploys", c, "deploy", deploy(model="--model={k}/tfk.h5"),
             exits=(0,), good="accepted", check=bundle_written),
        Case("model-savedmodel-bad-signature", c, "deploy", deploy(
             "--signature=predict_nope", model="--model={k}/ints_sm"), needles=("predict_nope",)),
        Case("model-float-tflite-deploys", c, "deploy", deploy(
             "--config.quantize.aeq_recipes=dynamic_wi8_afp32",
             model="--model={k}/bundle/fp32.tflite"), exits=(0,), good="accepted",
             check=bundle_written),
        Case("model-keras3-lambda-evaluate", c, "evaluate", ("--model={k}/lambda.keras", DATA),
             needles=("lambda.keras",), out=None),
    ]  # fmt: skip


def _corrupt_history(d: Path, kit) -> None:
    (d / "h.jsonl").write_text('{"model": "a", "p50": 1.0}\n{not json\n\x00\x01')


def flags() -> list[Case]:
    c = "flags"
    bench = ("--model={k}/bundle/fp32.tflite", "--min_secs=0")
    return [
        Case("flag-num-runs-negative", c, "benchmark", (*bench, "--num_runs=-5"),
             needles=("num_runs",), out=None, issue="benchmark --num_runs=-5 reports nan, ok"),
        Case("flag-input-range-one-value", c, "deploy", deploy("--input_range=1",
             data="--data={k}/images"), needles=("input_range",),
             issue="--input_range=1 says 'not enough values to unpack'"),
        Case("flag-corrupt-history", c, "benchmark", (*bench, "--num_runs=2",
             "--history={d}/h.jsonl"), setup=_corrupt_history, needles=("h.jsonl",), out=None,
             issue="a corrupt latency-history file"),
        Case("flag-unknown", c, "deploy", deploy("--no_such_flag=1"), needles=("no_such_flag",)),
        Case("flag-unknown-config-key", c, "deploy", deploy("--config.quantize.recipse=int8"),
             needles=("recipse",)),
        Case("flag-target-tpu", c, "deploy", deploy("--target=tpu"), needles=("target",)),
        Case("flag-input-range-words", c, "deploy", deploy("--input_range=a,b",
             data="--data={k}/images"), needles=("input_range",)),
        Case("flag-input-range-reversed", c, "deploy", deploy("--input_range=1,0",
             data="--data={k}/images"), needles=("input_range",)),
        Case("flag-mean-wrong-channels", c, "deploy", deploy("--mean=1,2", "--std=1,1",
             data="--data={k}/images"), needles=("mean",)),
        Case("flag-std-zero", c, "deploy", deploy("--mean=0", "--std=0",
             data="--data={k}/images"), needles=("std",)),
        Case("flag-resize-zero", c, "deploy", deploy("--input_range=0,1", "--resize=0,8",
             data="--data={k}/images"), needles=("resize",)),
        Case("flag-recipe-unknown", c, "deploy", deploy(recipes="int3"),
             needles=("int3",)),
        Case("flag-calibration-size-zero", c, "deploy",
             deploy("--config.quantize.calibration_size=0"), needles=("calibration_size",)),
        Case("flag-budget-negative", c, "deploy", deploy("--config.budget.max_drop_pp=-1"),
             needles=("max_drop_pp", ">= 0")),
        Case("flag-budget-floor-above-one", c, "deploy", deploy("--config.budget.min_top1=1.5"),
             needles=("min_top1",)),
        Case("flag-budget-unused-on-unlabelled", c, "deploy", deploy(
             "--config.budget.max_drop_pp=0.5"), exits=(0,), good="accepted",
             check=_says_unused_budget),
        Case("flag-evaluate-batch-zero", c, "evaluate", ("--model={k}/bundle/fp32.tflite",
             DATA, "--batch_size=0"), needles=("batch_size",), out=None),
        Case("flag-benchmark-threads-negative", c, "benchmark", (*bench, "--threads=-2"),
             needles=("threads",), out=None),
        Case("flag-benchmark-min-secs-negative", c, "benchmark", (*bench, "--min_secs=-1"),
             needles=("min_secs",), out=None),
        Case("flag-quantize-recipe-unknown", c, "quantize", (M, "--recipe=int3", DATA, OUT),
             needles=("int3",)),
        Case("flag-corrupt-store", c, "benchmark", (*bench, "--num_runs=2",
             "--store={d}/s.jsonl"), setup=lambda d, k: (d / "s.jsonl").write_text("{oops\n"),
             exits=(0,), good="accepted", out=None),  # the benchmark appends; it never reads
        # the training binaries (from the old probe_bad_input.py): config files and keys
        Case("flag-autoquant-config-missing", c, "autoquant", ("--config=configs/nope.py",
             "--workdir={d}/w"), needles=("nope.py",), out="w"),
        Case("flag-pipeline-config-syntax", c, "pipeline", ("--config={d}/broken.py",
             "--workdir={d}/w"), setup=lambda d, k: (d / "broken.py").write_text(
             "def get_config(:\n"), needles=("broken.py",), out="w"),
        Case("flag-train-misspelled-key", c, "train", ("--config=configs/test.py",
             "--config.train.epohcs=2", "--workdir={d}/w"), needles=("epohcs",), out="w"),
    ]  # fmt: skip


def _json(path: Path) -> dict:
    return json.loads(path.read_text())
