"""Benchmark: Keras 3 QAT (edgequant.train.keras3_qat) against plain uint8 PTQ on real images.

  python benchmarks/keras3_qat.py [--data_dir=/usr/share/datasets/fashion-mnist] \
      [--workdir=runs/bench/keras3_qat] [--output_json=runs/bench/keras3_qat.json] \
      [--part=engine,deploy]

Needs Debian's `dataset-fashion-mnist` (70,000 real images; apt-get install dataset-fashion-mnist).
Three measurements, all on the 10,000 held-out test images, every .tflite read by signature name:
  (i)   a small depthwise Keras 3 CNN whose channel ranges differ by up to 64x (an exact float
        re-parametrisation, see _imbalance): float top-1, uint8 PTQ top-1 (per-tensor and
        per-channel weights) and top-1 after QAT on labels, each gated for the Edge TPU;
  (ii)  a two-output Keras 3 model (same re-parametrisation) (class probabilities + a 4x4 thumbnail regression) fine-tuned
        without labels by distillation: the worst output's SQNR against the float model,
        plain uint8 PTQ vs QAT;
  (iii) parity of each QAT Keras model with its converted .tflite (SQNR, agreement);
and the route measurement: whether a faithful tf_keras rebuild of a Keras 3 model (route (a),
tfmot) loads at all. Float training is seeded; numbers vary slightly with the TF build.

`--part=deploy` (benchmarks/keras3_qat_deploy.py) runs the same questions end to end as a user
would: Keras 3 models trained here, Fashion-MNIST written as PNG folders under --workdir, and
`tools/deploy.py --qat --train_data=...`, every number read from deploy.json.
"""

from __future__ import annotations

from absl import flags

from edgequant import cli

_DATA = flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist", "Fashion-MNIST IDX.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/bench/keras3_qat", "The .tflite files go here.")
_OUT = flags.DEFINE_string("output_json", "runs/bench/keras3_qat.json", "Write numbers here.")
_EPOCHS = flags.DEFINE_integer("float_epochs", 8, "Float training epochs.")
_QAT_EPOCHS = flags.DEFINE_integer("qat_epochs", 2, "QAT epochs.")
_QAT_SAMPLES = flags.DEFINE_integer("qat_samples", 20000, "Training images used by QAT.")
_PART = flags.DEFINE_list("part", ["engine"], "engine (the QAT engine alone), deploy, or both.")
_CASES = flags.DEFINE_list("deploy_cases", ["a", "b", "c", "d"], "--part=deploy: which cases.")
cli.define_verbose_flag()


def _load(data_dir: str):
    """Fashion-MNIST through the dataset registry (Debian's dataset-fashion-mnist), all 60,000
    training images (train + val) and the 10,000 test images, scaled to [0, 1]."""
    import numpy as np

    from edgequant.datasets import fashion_mnist

    stored = fashion_mnist.read(data_dir, seed=0)

    def images(x):
        return (x.astype(np.float32) / 255.0)[..., None]

    train = [stored.train] + ([stored.val] if stored.val is not None else [])
    return (
        images(np.concatenate([t.x for t in train])),
        np.concatenate([t.y for t in train]).astype(np.int64),
        images(stored.test.x),
        stored.test.y.astype(np.int64),
    )


def _trunk(keras, inp):
    """A small depthwise-separable CNN (MobileNet-style blocks, BN after every conv, ReLU)."""
    layers = keras.layers
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inp)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for i, (filters, stride) in enumerate([(32, 1), (64, 2)]):
        x = layers.DepthwiseConv2D(
            3, strides=stride, padding="same", use_bias=False, name=f"dw{i}"
        )(x)
        x = layers.ReLU(name=f"relu_dw{i}")(layers.BatchNormalization(name=f"bn_dw{i}")(x))
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"pw{i}")(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    return layers.GlobalAveragePooling2D()(x)


def _imbalance(model, seed: int) -> None:
    """Rescales each depthwise channel by 2**U(-3, 3) after its BatchNormalization and divides
    the next pointwise kernel by the same factor: the float function is unchanged (ReLU is
    positively homogeneous), but channel ranges now differ by up to 64x, as in trained
    MobileNets that cross-layer equalisation exists for. Per-tensor weight and activation
    ranges must cover the widest channel, so narrow channels keep few levels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for i in range(2):
        gamma, beta, mean, var = model.get_layer(f"bn_dw{i}").get_weights()
        s = (2.0 ** rng.uniform(-3, 3, gamma.shape)).astype(np.float32)
        model.get_layer(f"bn_dw{i}").set_weights([gamma * s, beta * s, mean, var])
        (kernel,) = model.get_layer(f"pw{i}").get_weights()
        model.get_layer(f"pw{i}").set_weights([kernel / s[None, None, :, None]])


def _classifier(keras):
    inp = keras.Input((28, 28, 1), name="image")
    out = keras.layers.Dense(10, activation="softmax", name="probs")(_trunk(keras, inp))
    return keras.Model(inp, out)


def _two_output(keras):
    inp = keras.Input((28, 28, 1), name="image")
    x = _trunk(keras, inp)
    probs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    thumb = keras.layers.Dense(16, name="thumbnail")(keras.layers.Dense(32, activation="relu")(x))
    return keras.Model(inp, [probs, thumb])


def _thumbnails(x):
    """4x4 block means of each 28x28 image: a regression target with real structure."""
    return x[:, :28, :28, 0].reshape(len(x), 4, 7, 4, 7).mean(axis=(2, 4)).reshape(len(x), 16)


def _convert(model, recipe, calib, path):
    from edgequant.edgetpu import analyzer, gate
    from edgequant.quantize import convert

    path.write_bytes(convert.convert(model, recipe, {"image": calib}))
    g = gate.check_full_integer(path)
    a = analyzer.analyze(path)
    return {"gate_passed": g.passed, "ops": len(a.ops), "ops_mapped": a.mapped_count}


def _top1(path, x, y) -> float:
    import numpy as np

    from edgequant.evaluate.runner import SignatureModel

    return float(np.mean(SignatureModel(path).predict({"image": x})["probs"].argmax(-1) == y))


def _sqnr(ref, got) -> float:
    import numpy as np

    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - got) ** 2)))


def _route_a(model) -> str:
    """Route (a): can tf_keras rebuild the Keras 3 model from its config?"""
    import tf_keras

    try:
        tf_keras.models.model_from_json(model.to_json())
    except Exception as e:  # noqa: BLE001 - any failure is the measurement
        return f"fails: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return "loads"


def main(argv):
    import keras3_qat_deploy  # beside this script (sys.path[0])

    from edgequant.errors import UserError

    bad = set(_PART.value) - {"engine", "deploy"}
    if bad:
        raise UserError(f"--part: unknown {sorted(bad)}; valid: engine, deploy")
    report = {}
    if "deploy" in _PART.value:
        report["deploy"] = keras3_qat_deploy.run(
            _load(_DATA.value),
            _WORKDIR.value,
            _QAT_EPOCHS.value,
            _EPOCHS.value,
            {
                "classifier": _classifier,
                "two_output": _two_output,
                "imbalance": _imbalance,
                "thumbnails": _thumbnails,
            },
            tuple(_CASES.value),
        )
        cli.report(report, _OUT.value)
    if "engine" in _PART.value:
        report["engine"] = engine()
        cli.report(report, _OUT.value)
    return 0


def engine() -> dict:
    import time
    from pathlib import Path

    import keras
    import numpy as np

    from edgequant.evaluate.runner import SignatureModel
    from edgequant.quantize import recipes
    from edgequant.train import keras3_qat as kq

    x_train, y_train, x_test, y_test = _load(_DATA.value)
    calib = x_train[-500:]
    qat_n = _QAT_SAMPLES.value
    tmp = Path(_WORKDIR.value)
    tmp.mkdir(parents=True, exist_ok=True)
    report: dict = {"data": "fashion-mnist", "test_images": len(x_test)}

    # (i) per-tensor weights on a depthwise net: PTQ vs QAT, on labels.
    keras.utils.set_random_seed(0)
    model = _classifier(keras)
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    t = time.perf_counter()
    model.fit(x_train, y_train, batch_size=128, epochs=_EPOCHS.value, verbose=0)
    float_s = time.perf_counter() - t
    trained_top1 = float(np.mean(model.predict(x_test, verbose=0).argmax(-1) == y_test))
    _imbalance(model, 0)
    report["route_a_tf_keras_rebuild"] = _route_a(model)
    float_top1 = float(np.mean(model.predict(x_test, verbose=0).argmax(-1) == y_test))
    per_tensor = recipes.get("uint8", "per_tensor")
    ptq = _convert(model, per_tensor, calib, tmp / "ptq.tflite")
    ptq_pc = _convert(model, recipes.get("uint8"), calib, tmp / "ptq_pc.tflite")
    qat = kq.prepare(model)
    tuned = kq.fine_tune(qat, {"image": x_train[:qat_n]}, y_train[:qat_n], _QAT_EPOCHS.value,
                         learning_rate=5e-5, batch_size=64, seed=0)  # fmt: skip
    qat_gate = _convert(kq.export(qat), recipes.get("uint8"), calib, tmp / "qat.tflite")
    qat_pt = kq.prepare(model, per_channel=False)
    tuned_pt = kq.fine_tune(qat_pt, {"image": x_train[:qat_n]}, y_train[:qat_n], _QAT_EPOCHS.value,
                            learning_rate=5e-5, batch_size=64, seed=0)  # fmt: skip
    qat_pt_gate = _convert(kq.export(qat_pt), per_tensor, calib, tmp / "qat_pt.tflite")
    i = {
        "float_top1": float_top1,
        "float_top1_before_rescaling": trained_top1,
        "float_train_s": round(float_s, 1),
        "ptq_uint8_per_tensor_top1": _top1(tmp / "ptq.tflite", x_test, y_test),
        "ptq_uint8_per_channel_top1": _top1(tmp / "ptq_pc.tflite", x_test, y_test),
        "qat_uint8_per_channel_top1": _top1(tmp / "qat.tflite", x_test, y_test),
        "qat_uint8_per_tensor_top1": _top1(tmp / "qat_pt.tflite", x_test, y_test),
        "qat_per_tensor_seconds": round(tuned_pt.seconds, 1),
        "qat_per_tensor_edgetpu": qat_pt_gate,
        "qat_seconds": round(tuned.seconds, 1),
        "qat_epochs": tuned.epochs,
        "bn_folded": len(qat.folded),
        "ptq_edgetpu": ptq,
        "ptq_per_channel_edgetpu": ptq_pc,
        "qat_edgetpu": qat_gate,
        "parity": kq.parity(qat, tmp / "qat.tflite", {"image": x_test[:2000]}),
    }
    report["i_per_tensor_classifier"] = i

    # (ii) two outputs, no labels for QAT: distillation against the float model.
    keras.utils.set_random_seed(1)
    two = _two_output(keras)
    two.compile(keras.optimizers.Adam(2e-3), ["sparse_categorical_crossentropy", "mse"])
    two.fit(x_train, [y_train, _thumbnails(x_train)], batch_size=128, epochs=_EPOCHS.value,
            verbose=0)  # fmt: skip
    _imbalance(two, 1)
    ref = kq.predict(two, {"image": x_test})
    uint8 = recipes.get("uint8")
    ptq2 = _convert(two, uint8, calib, tmp / "ptq2.tflite")
    ptq_out = SignatureModel(tmp / "ptq2.tflite").predict({"image": x_test})
    qat2 = kq.prepare(two)
    tuned2 = kq.fine_tune(qat2, {"image": x_train[:qat_n]}, None, _QAT_EPOCHS.value,
                          learning_rate=2e-5, batch_size=64, seed=0)  # fmt: skip
    qat2_gate = _convert(kq.export(qat2), uint8, calib, tmp / "qat2.tflite")
    qat_out = SignatureModel(tmp / "qat2.tflite").predict({"image": x_test})
    ptq_sqnr = {k: _sqnr(ref[k], ptq_out[k]) for k in ref}
    qat_sqnr = {k: _sqnr(ref[k], qat_out[k]) for k in ref}
    report["ii_two_output_distillation"] = {
        "outputs": sorted(ref),
        "ptq_sqnr_db": ptq_sqnr,
        "qat_sqnr_db": qat_sqnr,
        "ptq_worst_sqnr_db": min(ptq_sqnr.values()),
        "qat_worst_sqnr_db": min(qat_sqnr.values()),
        "ptq_agreement": float(np.mean(ptq_out["probs"].argmax(-1) == ref["probs"].argmax(-1))),
        "qat_agreement": float(np.mean(qat_out["probs"].argmax(-1) == ref["probs"].argmax(-1))),
        "qat_seconds": round(tuned2.seconds, 1),
        "qat_epochs": tuned2.epochs,
        "distilled": tuned2.distilled,
        "ptq_edgetpu": ptq2,
        "qat_edgetpu": qat2_gate,
        "parity": kq.parity(qat2, tmp / "qat2.tflite", {"image": x_test[:2000]}),
    }

    f, pt, pc, q, qt = (100 * i[k] for k in ("float_top1", "ptq_uint8_per_tensor_top1",
                        "ptq_uint8_per_channel_top1", "qat_uint8_per_channel_top1",
                        "qat_uint8_per_tensor_top1"))  # fmt: skip
    print(f"route (a) tf_keras rebuild of a Keras 3 model: {report['route_a_tf_keras_rebuild']}")
    print(
        f"(i) top-1 on {len(x_test)} test images: float {f:.2f}%, PTQ uint8 per-tensor {pt:.2f}% "
        f"({pt - f:+.2f} pp), PTQ uint8 per-channel {pc:.2f}% ({pc - f:+.2f} pp), QAT uint8 "
        f"per-channel {q:.2f}% ({q - f:+.2f} pp), QAT uint8 per-tensor {qt:.2f}% "
        f"({qt - f:+.2f} pp); QAT {i['qat_seconds']} s, {i['qat_epochs']} "
        f"epochs; Edge TPU ops mapped {qat_gate['ops_mapped']}/{qat_gate['ops']}, gate "
        f"{'passes' if qat_gate['gate_passed'] else 'FAILS'}"
    )
    ii = report["ii_two_output_distillation"]
    print(
        f"(ii) worst-output SQNR vs float: PTQ {ii['ptq_worst_sqnr_db']:.2f} dB, distillation "
        f"QAT {ii['qat_worst_sqnr_db']:.2f} dB (per output PTQ {ptq_sqnr}, QAT {qat_sqnr}); "
        f"ops mapped {qat2_gate['ops_mapped']}/{qat2_gate['ops']}"
    )
    for name, p in (("(i)", i["parity"]), ("(ii)", ii["parity"])):
        print(f"(iii) parity {name} QAT Keras vs .tflite: {p}")
    return report


if __name__ == "__main__":
    cli.run(main)
