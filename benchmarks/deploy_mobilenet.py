"""Wall time of `tools/deploy.py` end to end on MobileNetV2 alpha=1.0 at 224x224.

  python benchmarks/deploy_mobilenet.py --workdir=runs/deploy_mnv2 [--output_json=F]

Random weights (no download here) are fine for timing: the work is the same. 500 calibration
and 1,000 evaluation JPEGs at 224x224 (Fashion-MNIST images upscaled to RGB when Debian's
dataset-fashion-mnist is installed, else seeded noise), target edgetpu: conversion with
calibration, the streamed evaluation of float and uint8, gate, analyzer, host latency.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "runs/deploy_mnv2", "Model, images and bundle.")
_FASHION = flags.DEFINE_string(
    "fashion_dir", "/usr/share/datasets/fashion-mnist", "Fashion-MNIST IDX files, if any."
)
_OUT = flags.DEFINE_string("output_json", None, "Write the numbers here too.")
cli.define_verbose_flag()


def images(n: int, fashion_dir: str, seed: int):
    from pathlib import Path

    import numpy as np
    import tensorflow as tf

    if Path(fashion_dir).is_dir():
        from edgequant.datasets import idx

        x = idx.read_idx_folder(Path(fashion_dir))["x_test"][seed * n : (seed + 1) * n]
        rgb = tf.image.grayscale_to_rgb(tf.constant(x[..., None]))
        return tf.cast(tf.image.resize(rgb, (224, 224)), tf.uint8).numpy(), "fashion-mnist"
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8), "noise"


def main(argv):
    import time
    from pathlib import Path

    import keras

    import edgequant
    from edgequant.data.folders import write_image_folder

    work = Path(_WORKDIR.value)
    model_path = work / "mobilenet_v2_1.0_224.keras"
    if not model_path.is_file():
        work.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(0)
        keras.applications.MobileNetV2((224, 224, 3), alpha=1.0, weights=None).save(model_path)
    calib, kind = images(500, _FASHION.value, 0)
    evals, _ = images(1000, _FASHION.value, 1)
    if not (work / "calibration").is_dir():
        write_image_folder(work / "calibration", calib, fmt="jpg")
        write_image_folder(work / "evaluation", evals, fmt="jpg")
    start = time.perf_counter()
    r = edgequant.deploy(
        model_path,
        work / "calibration",
        work / "bundle",
        eval_data=work / "evaluation",
        mean=(127.5,),
        std=(127.5,),
        target="edgetpu",
    )
    seconds = time.perf_counter() - start
    (v,) = [v for v in r["variants"] if v["name"] == "uint8"]
    report = {
        "model": "MobileNetV2 alpha=1.0 224x224 (random weights)",
        "images": kind,
        "calibration": r["calibration"]["n"],
        "evaluation": r["evaluation"]["n"],
        "wall_seconds": seconds,
        "uint8_agreement": v["metrics"]["agreement"],
        "uint8_sqnr_db": v["metrics"]["sqnr_db"],
        "gate": v["gate"],
        "edgetpu_mapped": f"{v['edgetpu']['mapped']}/{v['edgetpu']['total']}",
        "uint8_p50_ms": (v.get("latency_ms") or {}).get("p50"),
    }
    cli.report(report, _OUT.value)
    return 0


if __name__ == "__main__":
    cli.run(main)
