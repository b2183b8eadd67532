""" "Your model, your data" measured on classifiers edgequant did not train, with real images.

  apt-get install dataset-fashion-mnist   # Debian's copy of Fashion-MNIST (70,000 real images)
  python benchmarks/byom.py --workdir=runs/byom [--epochs=3] [--output_json=F]

1. A Keras 3 CNN trained here on the 60,000 Fashion-MNIST training images, saved as `.keras`
   (the TF 2.16+ default), deployed like a user would: 2,000 training images as PNG class
   folders for calibration, the 10,000 test images as PNG class folders for evaluation,
   `--target=edgetpu`. Reported: float and uint8 top-1 on 10,000 images, gate, mapping.
2. A tf_keras legacy `.h5` of the same architecture with a flat, unlabelled folder of 1,000
   test images: agreement and SQNR only.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "runs/byom", "Models, image folders and bundles.")
_FASHION = flags.DEFINE_string(
    "fashion_dir", "/usr/share/datasets/fashion-mnist", "Fashion-MNIST IDX files."
)
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Training epochs of the Keras 3 model.")
_OUT = flags.DEFINE_string("output_json", None, "Write the numbers here too.")
cli.define_verbose_flag()


def train(keras, x, y, epochs: int, name: str):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1), name="image"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax", name=name),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[..., None] / 255.0, y, epochs=epochs, batch_size=128, verbose=2)
    return model


def main(argv):
    import time
    from pathlib import Path

    import keras
    import numpy as np
    import tf_keras

    import edgequant
    from edgequant.data.folders import write_image_folder
    from edgequant.datasets import fashion_mnist, idx

    if not Path(_FASHION.value).is_dir():
        raise FileNotFoundError(
            f"Fashion-MNIST not found at {_FASHION.value}: apt-get install dataset-fashion-mnist"
        )
    work = Path(_WORKDIR.value)
    data = idx.read_idx_folder(Path(_FASHION.value))
    x_train, y_train = data["x_train"], data["y_train"].astype(np.int64)
    x_test, y_test = data["x_test"], data["y_test"].astype(np.int64)
    pick = np.random.default_rng(0).permutation(len(x_train))[:2000]
    calib = work / "calibration_png"
    test = work / "test_png"
    labels = work / "labels.txt"  # the model's output order; folders sort differently
    work.mkdir(parents=True, exist_ok=True)
    labels.write_text("\n".join(fashion_mnist.CLASS_NAMES) + "\n")
    if not calib.is_dir():
        write_image_folder(
            calib, x_train[pick], y_train[pick], class_names=fashion_mnist.CLASS_NAMES
        )
    if not test.is_dir():
        write_image_folder(test, x_test, y_test, class_names=fashion_mnist.CLASS_NAMES)

    report = {}
    k3_path = work / "fashion_cnn.keras"
    if not k3_path.is_file():
        train(keras, x_train, y_train, _EPOCHS.value, "scores").save(k3_path)
    start = time.perf_counter()
    r = edgequant.deploy(
        k3_path,
        calib,
        work / "bundle_keras3",
        eval_data=test,
        labels=labels,
        input_range=(0, 1),
        target="edgetpu",
        **{"quantize.calibration_size": 1000},
    )
    seconds = time.perf_counter() - start
    (v,) = [v for v in r["variants"] if v["name"] == "uint8"]
    report["keras3_png_edgetpu"] = {
        "eval_images": r["evaluation"]["n"],
        "calibration_images": r["calibration"]["n"],
        "float_top1": r["float"]["metrics"]["top1"],
        "uint8_top1": v["metrics"]["top1"],
        "delta_pp": 100 * (v["metrics"]["top1"] - r["float"]["metrics"]["top1"]),
        "gate": v["gate"],
        "edgetpu_mapped": f"{v['edgetpu']['mapped']}/{v['edgetpu']['total']}",
        "recommended": r["recommended"],
        "deploy_seconds": seconds,
    }
    h5_path = work / "fashion_cnn_legacy.h5"
    if not h5_path.is_file():
        train(tf_keras, x_train[:20000], y_train[:20000], 1, "scores").save(h5_path)
    flat = work / "flat_png"
    if not flat.is_dir():
        write_image_folder(flat, x_test[:1000])
    r = edgequant.deploy(h5_path, flat, work / "bundle_h5", input_range=(0, 1), target="edgetpu")
    (v,) = [v for v in r["variants"] if v["name"] == "uint8"]
    report["h5_flat_unlabelled"] = {
        "eval_images": r["evaluation"]["n"],
        "labels": r["evaluation"]["labels"],
        "agreement": v["metrics"]["agreement"],
        "sqnr_db": v["metrics"]["sqnr_db"],
        "gate": v["gate"],
    }
    cli.report(report, _OUT.value)
    return 0


if __name__ == "__main__":
    cli.run(main)
