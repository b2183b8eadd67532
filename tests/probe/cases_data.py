"""Probe cases over data of every kind, devices (the loopback sshd) and interruptions."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import numpy as np

from tests import sshd
from tests.probe.case import Case
from tests.probe.cases_out import DATA, OUT, M, bundle_written, deploy
from tests.probe.kit import CLASSES, copy_bundle, images

IMG = ("--data={d}/images", "--input_range=0,1")


def _images(d: Path, kit, **kw) -> Path:
    return images(d / "images", **kw)


def _truncate_third(d: Path, kit) -> None:
    for i, p in enumerate(sorted(_images(d, kit).rglob("*.png"))):
        if i % 3 == 0:
            p.write_bytes(p.read_bytes()[:40])  # a valid PNG header, then nothing


def _webp_class(d: Path, kit) -> None:
    _images(d, kit)
    images(d / "tmp", seed=1, ext="webp")
    shutil.rmtree(d / "images" / "cat")  # the same three classes, one of them all .webp
    shutil.move(d / "tmp" / "cat", d / "images" / "cat")


def _npz(d: Path, name: str = "d.npz", **arrays) -> None:
    np.savez(d / name, **arrays)


def _x(n: int = 60) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (n, 8, 8, 3)).astype(np.float32)


def _tfrecord(d: Path, label_key: str = "label", ragged: bool = False) -> None:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(d / "d.tfrecord")) as w:
        for i, xi in enumerate(_x(30)):
            values = xi.ravel()[: 100 if ragged and i == 7 else None]
            feat = {"image": tf.train.Feature(float_list=tf.train.FloatList(value=values)),
                    label_key: tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3]))}  # fmt: skip
            w.write(tf.train.Example(features=tf.train.Features(feature=feat)).SerializeToString())


def _module(d: Path, body: str) -> None:
    (d / "mydata.py").write_text("import numpy as np\n" + body)


def _accuracy_matches_bundle(d: Path, o) -> str | None:
    """tools/evaluate.py on a bundle's model must agree with the bundle's own deploy.json."""
    bundle = json.loads((d.parent / "_kit" / "bundle" / "deploy.json").read_text())
    want = [v for v in bundle["variants"] if v["name"] == "int8"][0]["metrics"]["top1"]
    got = json.loads((d / "e.json").read_text())["top1"]
    return None if abs(got - want) < 1e-6 else f"top-1 {got:.4f}, deploy.json says {want:.4f}"


PY = ("PYTHONPATH", "{d}")


def data() -> list[Case]:
    c = "data"
    x = _x()
    y = np.random.default_rng(1).integers(0, 3, 60)
    ev = ("--model={k}/bundle/int8.tflite", "--data={k}/images")
    return [
        Case("data-truncated-pngs", c, "deploy", deploy(*IMG[1:], data=IMG[0]), setup=_truncate_third,
             needles=("corrupt",), issue="33% of the PNGs truncated are dropped, counted 0"),
        Case("data-webp-class", c, "deploy", deploy(*IMG[1:], data=IMG[0]), setup=_webp_class,
             exits=(0,), good="accepted", check=bundle_written,  # TF decodes WebP: it is read
             issue="a class folder of .webp files is ignored"),
        Case("data-eval-classes-differ", c, "deploy", deploy(*IMG[1:], "--eval_data={d}/ev",
             data=IMG[0]), setup=lambda d, k: (_images(d, k), images(d / "ev", seed=2),
             shutil.move(d / "ev" / "owl", d / "ev" / "emu")), needles=("emu",),
             issue="--eval_data class folders that differ from --data's are never compared"),
        Case("data-label-minus-one", c, "deploy", deploy(data="--data={d}/d.npz"),
             setup=lambda d, k: _npz(d, image=x, labels=np.where(np.arange(60) == 5, -1, y)),
             needles=("-1",), issue="a label of -1 is scored and wraps into the last class"),
        Case("data-tfrecord-misspelled-label", c, "deploy", deploy(
             "--config.data.label_key=lable", data="--data={d}/d.tfrecord"),
             setup=lambda d, k: _tfrecord(d), needles=("lable",),
             issue="a misspelled TFRecord label key silently turns the deployment unlabelled"),
        Case("data-nan-inputs", c, "deploy", deploy(data="--data={d}/d.npz"), needles=("d.npz",),
             setup=lambda d, k: _npz(d, image=np.where(x > 0.99, np.nan, x), labels=y),
             issue="NaN input data crashes in the report writer"),
        Case("data-inf-inputs", c, "deploy", deploy(data="--data={d}/d.npy"), needles=("d.npy",),
             setup=lambda d, k: np.save(d / "d.npy", np.where(x > 0.99, np.inf, x)),
             issue="Inf input data crashes in the report writer"),
        Case("data-tfrecord-ragged", c, "deploy", deploy(data="--data={d}/d.tfrecord"),
             setup=lambda d, k: _tfrecord(d, ragged=True), needles=("d.tfrecord",),
             issue="TFRecord records that differ from the first one"),
        Case("data-callable-raises", c, "deploy", deploy(data="--data=mydata:samples"),
             env=(PY,), setup=lambda d, k: _module(d, "def samples():\n    raise OSError('gone')\n"),
             needles=("mydata:samples",), issue="a data callable that raises"),
        Case("data-callable-returns-none", c, "deploy", deploy(data="--data=mydata:samples"),
             env=(PY,), setup=lambda d, k: _module(d, "def samples():\n    return None\n"),
             needles=("mydata:samples",), issue="a data callable that returns None"),
        Case("data-callable-endless", c, "deploy", deploy(data="--data=mydata:samples"),
             env=(PY,), timeout=30, setup=lambda d, k: _module(d, "def samples():\n    while True:\n"
             "        yield np.zeros((8, 8, 3), np.float32), 0\n"),
             issue="an endless data generator never finishes the counting pass"),
        Case("data-resize-huge", c, "deploy", deploy(*IMG[1:], "--resize=20000,20000",
             data=IMG[0]), setup=_images, needles=("20000",), timeout=90,
             issue="--resize=20000,20000 is not refused"),
        Case("data-evaluate-bundle-embedded-spec", c, "evaluate", (*ev, "--output_json={d}/e.json"),
             exits=(0,), out=None, check=_accuracy_matches_bundle,
             issue="evaluate.py on a bundle model without --input_range"),
        Case("data-evaluate-contradicting-range", c, "evaluate", (*ev, "--input_range=0,1"),
             out=None, needles=("0,255",), issue="--input_range=0,1 on a model deployed with 0,255"),
        Case("data-folder-eval-defaults", c, "benchmarks/folder_eval", (
             "--model={k}/bundle/int8.tflite", "--folder={k}/images", "--repeats=1",
             "--output_json={d}/e.json"), exits=(0,), out=None, check=_accuracy_matches_bundle,
             issue="bench_folder_eval defaults to 0,1 and reports 12.29%"),
        Case("data-empty-folder", c, "deploy", deploy(*IMG[1:], data=IMG[0]),
             setup=lambda d, k: (d / "images").mkdir(), needles=("images",)),
        Case("data-one-class", c, "deploy", deploy(*IMG[1:], data=IMG[0]),
             setup=lambda d, k: (_images(d, k), shutil.rmtree(d / "images/dog"),
                                 shutil.rmtree(d / "images/owl")), needles=("class",)),
        Case("data-npz-wrong-key", c, "deploy", deploy(data="--data={d}/d.npz"),
             setup=lambda d, k: _npz(d, pixels=x, label=y), needles=("image",)),
        Case("data-npy-wrong-shape", c, "deploy", deploy(data="--data={d}/d.npy"),
             setup=lambda d, k: np.save(d / "d.npy", x[:, :4]), needles=("d.npy",)),
        Case("data-labels-wrong-length", c, "deploy", deploy(data="--data={d}/d.npz"),
             setup=lambda d, k: _npz(d, image=x, labels=y[:50]), needles=("label",)),
        Case("data-readme-among-images", c, "deploy", deploy(*IMG[1:], data=IMG[0]), exits=(0,),
             good="accepted", setup=lambda d, k: (_images(d, k), (d / "images/README.txt")
             .write_text("my photos")), check=bundle_written),
        Case("data-tfrecord-glob-matches-nothing", c, "deploy",
             deploy(data="--data={d}/none-*.tfrecord"), needles=("none-",)),
        Case("data-callable-module-missing", c, "deploy", deploy(data="--data=nosuchmod:f"),
             needles=("nosuchmod",)),
        Case("data-labels-file-short", c, "deploy", deploy(*IMG[1:], "--labels={d}/labels.txt",
             data=IMG[0]), setup=lambda d, k: (_images(d, k), (d / "labels.txt").write_text(
             "cat\ndog\n")), needles=("owl",)),
        Case("data-labels-file-unknown-class", c, "deploy", deploy(*IMG[1:],
             "--labels={d}/labels.txt", data=IMG[0]), setup=lambda d, k: (_images(d, k),
             (d / "labels.txt").write_text("cat\ndog\nemu\n")), needles=("owl",)),
        Case("data-missing-path", c, "deploy", deploy(data="--data={d}/nope"), needles=("nope",)),
        Case("data-labels-file-order", c, "deploy", deploy(*IMG[1:], "--labels={d}/labels.txt",
             data=IMG[0]), exits=(0,), good="accepted", check=bundle_written,
             setup=lambda d, k: (_images(d, k), (d / "labels.txt").write_text(
                 "\n".join(reversed(CLASSES)) + "\n"))),
        Case("data-tfrecord-good", c, "deploy", deploy(data="--data={d}/d.tfrecord"), exits=(0,),
             good="accepted", setup=lambda d, k: _tfrecord(d), check=bundle_written),
    ]  # fmt: skip


def _own_server(d: Path, kit) -> None:
    """A private sshd for a case that kills it (the session's server stays up for the rest)."""
    server = sshd.make_server(d / "_probe" / "sshd")
    server.start()
    info = {"pid": server.proc.pid, "dest": server.destination}
    (d / "_probe" / "server.json").write_text(json.dumps(info))


def _kill_after(seconds: float):
    """The device loses power `seconds` after the binary's first SSH session reaches it."""

    def during(d: Path, pid: int) -> None:
        import os

        info = json.loads((d / "_probe" / "server.json").read_text())
        deadline = time.monotonic() + 60
        while not sshd._descendants(info["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(seconds)
        for child in [*sshd._descendants(info["pid"]), info["pid"]]:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass

    return during


def devices() -> list[Case]:
    c = "devices"
    ssh = ("--ssh_config={ssh}", "--inventory=")
    bench = (
        "--model={k}/bundle/fp32.tflite",
        "--num_runs=3",
        "--min_secs=0",
        "--store={d}/results.jsonl",
        *ssh,
    )
    own = ("--ssh_config={d}/_probe/sshd/ssh_config", "--inventory=")
    return [
        Case("dev-runtime-all-refusing", c, "benchmark", (*bench, "--device={dead}",
             "--runtime=all", "--remote_python={py}"), out=None,
             issue="benchmark.py --runtime=all against a refusing device"),
        Case("dev-deploy-refusing", c, "deploy", deploy(*ssh, "--device={dead}",
             "--remote_python={py}"), exits=(1,), check=lambda d, o: None if (
             d / "out/deploy.json").is_file() else "no bundle for the host results"),
        Case("dev-deploy-missing-python", c, "deploy", deploy(*ssh, "--device={dest}",
             "--remote_python=/nope/python3"), exits=(1,)),
        Case("dev-deploy-unknown-name", c, "deploy", deploy("--device=coral-nope"),
             needles=("coral-nope",)),
        Case("dev-deploy-bad-destination", c, "deploy", deploy("--device=root@@host:xx"),
             needles=("root@@host:xx",)),
        Case("dev-bench-refusing", c, "benchmark", (*bench, "--device={dead}",
             "--remote_python={py}"), exits=(1,), out=None),
        Case("dev-bench-missing-python", c, "benchmark", (*bench, "--device={dest}",
             "--remote_python=/nope/python3"), exits=(1,), out=None),
        Case("dev-bench-ssh-config-missing", c, "benchmark", ("--model={k}/bundle/fp32.tflite",
             "--ssh_config={d}/nope_config", "--device={dest}", "--inventory="),
             needles=("nope_config",), out=None),
        Case("dev-bench-corrupt-inventory", c, "benchmark", ("--model={k}/bundle/fp32.tflite",
             "--inventory={d}/inv.toml", "--device=x"), setup=lambda d, k: (d / "inv.toml")
             .write_text("[devices\nx = "), needles=("inv.toml",), out=None),
        Case("dev-bench-good", c, "benchmark", (*bench, "--device={dest}", "--remote_python={py}",
             "--output_json={d}/b.json"), exits=(0,), good="accepted", out=None, timeout=120),
        Case("dev-bench-dies-mid-run", c, "benchmark", ("--model={k}/bundle/fp32.tflite",
             "--num_runs=100000", "--min_secs=20", "--max_secs=30", *own, "--device={own}",
             "--remote_python={py}", "--step_timeout=20"), setup=_own_server, exits=(1,),
             during=_kill_after(1.5), out=None, timeout=90, slow=True),
        Case("dev-deploy-dies-mid-run", c, "deploy", deploy(*own, "--device={own}",
             "--remote_python={py}", "--config.bench.enabled=true", "--config.bench.min_secs=1.5",
             "--config.bench.num_runs=3", "--config.bench.threads=(1,)"), setup=_own_server,
             exits=(1,), during=_kill_after(0.5), timeout=120, slow=True),
        Case("dev-deploy-good", c, "deploy", deploy(*ssh, "--device={dest}",
             "--remote_python={py}", "--config.bench.enabled=true", "--config.bench.num_runs=3",
             "--config.bench.min_secs=0"), exits=(0,), good="accepted", check=bundle_written,
             timeout=60, slow=True),
    ]  # fmt: skip


def interrupts() -> list[Case]:
    c = "interrupts"
    prev = {"setup": lambda d, k: copy_bundle(k, d / "out")}
    INT, TERM = signal.SIGINT, signal.SIGTERM
    staging = "{d}/out.staging-*"
    bench = ("--model={k}/bundle/fp32.tflite", "--num_runs=100000", "--min_secs=30",
             "--max_secs=60")  # fmt: skip

    def said_kept(d: Path, o) -> str | None:
        line = ([ln for ln in o.stderr.splitlines() if ln.startswith("error:")] or [""])[-1]
        return "says nothing was kept over a kept bundle" if "nothing was kept" in line else None

    return [
        Case("int-rerun-message-says-kept", c, "deploy", deploy(), exits=(130,), **prev,
             signals=((staging, INT),), check=said_kept, needles=("interrupted",),
             issue="the interrupt message says 'nothing was kept' when the bundle was kept"),
        Case("int-huge-resize-sigterm", c, "deploy", deploy(*IMG[1:], "--resize=20000,20000",
             data=IMG[0]), setup=_images, exits=(2, 143), signals=((3.0, TERM),), timeout=30,
             issue="a huge --resize deadlocks and ignores SIGINT and SIGTERM"),
        Case("int-sigint-early", c, "deploy", deploy(), exits=(130,), signals=((0.3, INT),),
             needles=("SIGINT",), **prev),
        Case("int-sigterm-early", c, "deploy", deploy(), exits=(143,), signals=((0.3, TERM),),
             needles=("SIGTERM",), **prev),
        Case("int-sigint-at-staging", c, "deploy", deploy(), exits=(130,), **prev,
             signals=((staging, INT),), needles=("SIGINT",)),
        Case("int-sigterm-at-staging", c, "deploy", deploy(), exits=(143,), **prev,
             signals=((staging, TERM),), needles=("SIGTERM",)),
        Case("int-sigterm-at-first-model", c, "deploy", deploy(), exits=(143,), **prev,
             signals=((staging + "/fp32.tflite", TERM),), needles=("SIGTERM",)),
        Case("int-second-sigint", c, "deploy", deploy(), exits=(130,), **prev,
             signals=((staging, INT), (0.05, INT)), needles=("SIGINT",)),
        Case("int-sigterm-then-sigint", c, "deploy", deploy(), exits=(130, 143), **prev,
             signals=((staging, TERM), (0.05, INT))),
        Case("int-first-run-interrupted", c, "deploy", deploy(), exits=(130,),
             signals=((staging, INT),), needles=("SIGINT",)),
        Case("int-benchmark-sigint", c, "benchmark", bench, exits=(130,), out=None,
             signals=((2.0, INT),), needles=("SIGINT",)),
        Case("int-benchmark-sigterm-json-kept", c, "benchmark", (*bench,
             "--output_json={d}/b.json"), exits=(143,), out=None, signals=((2.0, TERM),),
             setup=lambda d, k: (d / "b.json").write_text('{"previous": true}')),
        Case("int-quantize-sigint", c, "quantize", (M, "--recipe=int8", DATA, OUT), exits=(130,),
             signals=((0.5, INT),), needles=("SIGINT",)),
        Case("int-sigint-while-tf-loads", c, "deploy", deploy(), exits=(130,), fresh=True,
             signals=((1.0, INT),), needles=("SIGINT",), slow=True, **prev),
    ]  # fmt: skip
