"""A tiny segmenter on synthetic shapes: float vs uint8 mIoU and pixel accuracy, Edge TPU gate
and mapping, host latency of the body and of the CPU postprocess, and what a quantized
postprocess (upsampling + argmax in the graph) costs.

  python benchmarks/segmentation.py --workdir=runs/segmentation [--epochs=15] [--output_json=F]
  [--nodeploy] [--noloopback]: step 6, tools/deploy.py --target=edgetpu --annotations=...
  (data and the trained seg_tiny.keras.h5 in the workdir are reused: delete them to redo)

1. Writes seeded synthetic shapes (edgequant/tasks/shapes.py) and reads the mask PNGs back
   through `tasks.load_annotations`, as a user's data would be.
2. Trains models/seg_tiny.py (CPU, minutes; loss on logits bilinearly upsampled to the mask, the
   same upsampling the CPU postprocess does), converts fp32 and uint8, runs both through
   SignatureModel, upsamples + argmaxes on the CPU in float and scores the streamed mIoU.
3. The uint8 body through the gate and the analyzer. 4. Latency: body (host benchmark
   subprocess) and numpy postprocess. 5. The upsampling and argmax inside the graph, quantized.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "runs/segmentation", "Data, models and results.")
_TRAIN = flags.DEFINE_integer("train_images", 800, "Synthetic training images.")
_EVAL = flags.DEFINE_integer("eval_images", 200, "Synthetic evaluation images.")
_EPOCHS = flags.DEFINE_integer("epochs", 15, "Training epochs.")
_SIZE = flags.DEFINE_integer("size", 96, "Image side (pixels).")
_OUT = flags.DEFINE_string("output_json", None, "Write the numbers here too.")
_DEPLOY = flags.DEFINE_bool(
    "deploy", True, "Also deploy through tools/deploy.py --target=edgetpu (task_deploy.py)."
)
_LOOPBACK = flags.DEFINE_bool("loopback", True, "With --deploy: a loopback sshd device too.")
cli.define_verbose_flag()


def train(model, x, masks, epochs: int):
    import numpy as np
    import tensorflow as tf

    batch = 32
    steps = epochs * (len(x) // batch)
    opt = tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(3e-3, steps))
    size = masks.shape[1:3]

    @tf.function
    def step(xb, mb):
        with tf.GradientTape() as tape:
            logits = tf.image.resize(model(xb, training=True)["class_logits"], size)
            keep = tf.cast(mb != 255, tf.float32)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.where(mb == 255, 0, mb), logits)
            loss = tf.reduce_sum(ce * keep) / tf.maximum(tf.reduce_sum(keep), 1.0)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        losses = [
            float(step(x[j], masks[j]))
            for j in (order[i : i + batch] for i in range(0, len(x) - batch + 1, batch))
        ]
        print(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.3f}", flush=True)


def score(path, truth, x) -> dict:
    from edgequant import tasks
    from edgequant.evaluate.runner import SignatureModel

    matrix = tasks.ConfusionMatrix(truth.num_classes)
    model = SignatureModel(path)
    for i in range(0, len(x), 50):  # streamed, as a deployment evaluates
        logits = model.predict({"image": x[i : i + 50]})["class_logits"]
        tasks.update_from_logits(matrix, logits, truth.images[i : i + 50])
    return matrix.result(truth.class_names).to_dict()


def score_in_graph(path, truth, x) -> dict:
    """A model whose graph already upsampled and took the argmax: its class map is the answer."""
    from edgequant import tasks
    from edgequant.evaluate.runner import SignatureModel

    labels = SignatureModel(path).predict({"image": x})["classes"]
    preds = ((t.stem, labels[i].astype("int64")) for i, t in enumerate(truth.images))
    return tasks.evaluate_segmentation(preds, truth).to_dict()


def with_postprocess(model, size: int):
    """The body plus bilinear upsampling and argmax as graph ops (an all-in-one export)."""
    import tensorflow as tf
    import tf_keras as keras

    logits = model.outputs[model.output_names.index("class_logits")]
    up = keras.layers.Lambda(lambda t: tf.image.resize(t, (size, size)), name="upsample")(logits)
    classes = keras.layers.Lambda(lambda t: tf.argmax(t, -1, output_type=tf.int32), name="classes")(
        up
    )
    return keras.Model(model.inputs, {"classes": classes})


def convert_all(model, x_calib, out_dir, prefix=""):
    import dataclasses

    from edgequant.quantize import convert, recipes

    paths = {}
    for name in ("fp32", "uint8"):
        r = recipes.get(name, calibration_size=len(x_calib))
        r = dataclasses.replace(r, name=prefix + r.name)
        paths[name] = convert.write(convert.convert(model, r, {"image": x_calib}), r, out_dir)
    return paths


def latency(path, truth, x) -> dict:
    import time

    import numpy as np

    from edgequant import tasks
    from edgequant.bench import host, settings
    from edgequant.evaluate.runner import SignatureModel

    s = settings.Settings(runtime="litert", threads=1, num_runs=50, min_secs=1.0, parity_lsb=None)
    body = host.benchmark_in_subprocess(path, s)
    logits = SignatureModel(path).predict({"image": x[:50]})["class_logits"]
    times = []
    for i, t in enumerate(truth.images[:50]):
        t0 = time.perf_counter()
        tasks.class_map(logits[i], t.height, t.width)
        times.append((time.perf_counter() - t0) * 1e3)
    post = float(np.median(times))
    p50 = body["latency_ms"]["p50"]
    return {
        "body_p50_ms": p50,
        "postprocess_p50_ms": post,
        "end_to_end_ms": p50 + post,
        "threads": 1,
    }


def check(path) -> dict:
    from edgequant.edgetpu import check as edgetpu_check

    (m,) = edgetpu_check.check_models([path])
    d = m.to_dict()
    return {
        "gate_passed": m.gate.passed,
        "gate": m.gate.summary() if not m.gate.passed else "passed",
        "mapped": f"{d['mapped_count']}/{d['op_count']}",
        "cpu_ops": d["cpu_ops"],
        "uncertain_ops": [f"{v.index} {v.op}" for v in m.analysis.uncertain_ops],
    }


def main(argv):
    import time
    from pathlib import Path

    import numpy as np
    import tf_keras as keras

    from edgequant import tasks, zoo
    from edgequant.tasks import formats, shapes

    work = Path(_WORKDIR.value)
    size = _SIZE.value
    start = time.perf_counter()
    data = {}
    for split, n, seed in (("train", _TRAIN.value, 10), ("eval", _EVAL.value, 11)):
        if not (work / split / "masks").is_dir():
            shapes.write_dataset(work / split, n, size=size, seed=seed)
        truth = tasks.load_annotations(work / split / "masks", work / split / "images", 4)
        data[split] = (truth, shapes.load_images(truth))
    (train_truth, x_train), (eval_truth, x_eval) = data["train"], data["eval"]
    keras_path = work / "seg_tiny.keras.h5"
    if keras_path.is_file():
        model = keras.models.load_model(keras_path, compile=False)
    else:
        keras.utils.set_random_seed(0)
        model = zoo.build("seg_tiny", (size, size, 3), len(shapes.SEG_CLASSES))
        masks = np.stack([formats.read_mask(t.mask) for t in train_truth.images]).astype(np.int32)
        train(model, x_train, masks, _EPOCHS.value)
        model.save(keras_path)
    train_secs = time.perf_counter() - start
    calib = x_train[:200]
    paths = convert_all(model, calib, work / "models")
    report = {"train_images": len(x_train), "eval_images": len(x_eval)}
    for name, p in paths.items():
        report[name] = score(p, eval_truth, x_eval)
    report["delta_miou_pp"] = 100 * (report["uint8"]["miou"] - report["fp32"]["miou"])
    report["edgetpu"] = check(paths["uint8"])
    report["latency_uint8"] = latency(paths["uint8"], eval_truth, x_eval)
    report["latency_fp32"] = latency(paths["fp32"], eval_truth, x_eval)
    joined = with_postprocess(model, size)
    try:
        qpaths = convert_all(joined, calib, work / "models", prefix="with_argmax_")
        report["quantized_postprocess"] = {
            name: {k: score_in_graph(p, eval_truth, x_eval)[k] for k in ("miou", "pixel_accuracy")}
            for name, p in qpaths.items()
        }
        report["quantized_postprocess"]["edgetpu"] = check(qpaths["uint8"])
    except Exception as e:  # noqa: BLE001 - the converter's refusal is itself the finding
        report["quantized_postprocess"] = {"error": str(e).splitlines()[0][:300]}
    if _DEPLOY.value:
        # 6. The user's path: tools/deploy.py with the mask PNGs, the segmenter ending in a
        # 4x bilinear upsampling that --postprocess_from keeps in a float tail on the CPU.
        import task_deploy

        up = keras.layers.UpSampling2D(4, interpolation="bilinear", name="upsample")(
            model.outputs[0]
        )
        full = work / "seg_tiny_upsampled.keras.h5"
        keras.Model(model.inputs, {"class_logits": up}).save(full)
        report["deploy"] = task_deploy.deploy(
            full,
            work / "train" / "images",
            work / "eval" / "images",
            work / "eval" / "masks",
            work / "bundle",
            _LOOPBACK.value,
            "--postprocess_from=upsample",
        )
    report["seconds"] = {"train_and_data": train_secs, "total": time.perf_counter() - start}
    cli.report(report, _OUT.value)
    return 0


if __name__ == "__main__":
    cli.run(main)
