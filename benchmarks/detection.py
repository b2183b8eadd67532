"""A tiny SSD detector on synthetic shapes: float vs uint8 COCO mAP, Edge TPU gate and mapping,
host latency of the body and of the CPU postprocess, and what a quantized postprocess costs.

  python benchmarks/detection.py --workdir=runs/detection [--epochs=25] [--output_json=F]
  [--nodeploy] [--noloopback]: step 6, tools/deploy.py --target=edgetpu --annotations=...
  (data and the trained ssd_tiny.keras.h5 in the workdir are reused: delete them to redo)

1. Writes seeded synthetic shapes (edgequant/tasks/shapes.py: PNG images + COCO/VOC/YOLO/mask
   annotations), training and evaluation sets apart, and reads them back through
   `tasks.load_annotations` (COCO JSON), as a user's data would be.
2. Trains models/ssd_tiny.py (CPU, minutes), converts fp32 and uint8 (full-integer, the Edge TPU
   form) with edgequant's converter, runs both through SignatureModel (outputs by name), decodes
   and NMSes on the CPU in float, and scores with pycocotools.
3. The uint8 body through the gate and the analyzer (predicted Edge TPU mapping).
4. Latency: the body through the host benchmark subprocess, the numpy postprocess in-process.
5. The same detector with decode + softmax inside the graph, quantized to uint8 too: the boxes
   and scores then come out as 8-bit values (what happens when the postprocess is quantized
   along with the body).
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "runs/detection", "Data, models and results.")
_TRAIN = flags.DEFINE_integer("train_images", 1200, "Synthetic training images.")
_EVAL = flags.DEFINE_integer("eval_images", 300, "Synthetic evaluation images.")
_EPOCHS = flags.DEFINE_integer("epochs", 25, "Training epochs.")
_SIZE = flags.DEFINE_integer("size", 96, "Image side (pixels).")
_OUT = flags.DEFINE_string("output_json", None, "Write the numbers here too.")
_DEPLOY = flags.DEFINE_bool(
    "deploy", True, "Also deploy through tools/deploy.py --target=edgetpu (task_deploy.py)."
)
_LOOPBACK = flags.DEFINE_bool("loopback", True, "With --deploy: a loopback sshd device too.")
cli.define_verbose_flag()


def targets(truth, anchors, size):
    import numpy as np

    from edgequant.tasks import boxes

    labels, regs = zip(
        *(boxes.match(t.boxes / size, t.classes, anchors) for t in truth.images), strict=True
    )
    return np.stack(labels), np.stack(regs)


def train(model, x, labels, regs, epochs: int):
    """SSD loss: Huber on positive anchors' regressions, softmax cross-entropy on positives and
    the 3x as many hardest negatives (hard negative mining), both per positive anchor."""
    import numpy as np
    import tensorflow as tf

    batch = 32
    steps = epochs * (len(x) // batch)
    opt = tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(2e-3, steps))

    @tf.function
    def step(xb, lb, rb):
        with tf.GradientTape() as tape:
            out = model(xb, training=True)
            pos = tf.cast(lb > 0, tf.float32)
            npos = tf.reduce_sum(pos, 1)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(lb, out["class_logits"])
            neg_ce = ce * (1 - pos)
            rank = tf.argsort(tf.argsort(neg_ce, axis=1, direction="DESCENDING"), axis=1)
            hard = tf.cast(rank < tf.cast(3 * npos[:, None] + 1, tf.int32), tf.float32) * (1 - pos)
            huber = tf.reduce_sum(
                tf.keras.losses.Huber(reduction="none")(
                    rb[..., None], out["box_regressions"][..., None]
                ),
                -1,
            )
            total = tf.maximum(tf.reduce_sum(npos), 1.0)
            loss = (tf.reduce_sum(ce * (pos + hard)) + tf.reduce_sum(huber * pos)) / total
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        losses = []
        for i in range(0, len(x) - batch + 1, batch):
            j = order[i : i + batch]
            xb = x[j]
            lb, rb = labels[j], regs[j]
            losses.append(float(step(xb, lb, rb)))
        print(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.3f}", flush=True)


def score(path, truth, x, anchors) -> dict:
    from edgequant import tasks
    from edgequant.evaluate.runner import SignatureModel

    out = SignatureModel(path).predict({"image": x})
    preds = tasks.detections_from_outputs(out, truth.images, anchors)
    return tasks.evaluate_detection(preds, truth).to_dict()


def score_decoded(path, truth, x) -> dict:
    """A model whose graph already decoded boxes and took the softmax: NMS only on the CPU."""
    import numpy as np

    from edgequant import tasks
    from edgequant.evaluate.runner import SignatureModel
    from edgequant.tasks import boxes

    out = SignatureModel(path).predict({"image": x})
    preds = {}
    for i, t in enumerate(truth.images):
        b, p = np.clip(out["boxes"][i], 0, 1), out["scores"][i][:, 1:]
        kept_b, kept_s, kept_c = [], [], []
        for c in range(p.shape[1]):
            idx = np.flatnonzero(p[:, c] >= 0.01)
            idx = idx[np.argsort(-p[idx, c], kind="stable")[:200]]
            k = idx[boxes.nms(b[idx], p[idx, c], 0.5, 100)]
            kept_b.append(b[k])
            kept_s.append(p[k, c])
            kept_c.append(np.full(k.size, c))
        scale = np.array([t.width, t.height] * 2, np.float32)
        preds[t.stem] = tasks.Detections(
            np.concatenate(kept_b) * scale, np.concatenate(kept_s), np.concatenate(kept_c)
        )
    return tasks.evaluate_detection(preds, truth).to_dict()


def with_postprocess(model, anchors):
    """The body plus SSD decode and softmax as graph ops (what an all-in-one export does)."""
    import tensorflow as tf
    import tf_keras as keras

    from edgequant.tasks.boxes import SCALES

    a = tf.constant(anchors)
    s = tf.constant(SCALES)

    def decode(t):
        t = t / s
        cy = t[..., 0] * a[:, 2] + a[:, 0]
        cx = t[..., 1] * a[:, 3] + a[:, 1]
        h = tf.exp(t[..., 2]) * a[:, 2]
        w = tf.exp(t[..., 3]) * a[:, 3]
        return tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)

    out = model.outputs
    names = model.output_names
    reg = out[names.index("box_regressions")]
    logits = out[names.index("class_logits")]
    b = keras.layers.Lambda(decode, name="boxes")(reg)
    p = keras.layers.Softmax(name="scores")(logits)
    return keras.Model(model.inputs, {"boxes": b, "scores": p})


def convert_all(model, x_calib, out_dir, prefix=""):
    import dataclasses

    from edgequant.quantize import convert, recipes

    paths = {}
    for name in ("fp32", "uint8"):
        r = recipes.get(name, calibration_size=len(x_calib))
        r = dataclasses.replace(r, name=prefix + r.name)
        paths[name] = convert.write(convert.convert(model, r, {"image": x_calib}), r, out_dir)
    return paths


def latency(path, truth, x, anchors) -> dict:
    import time

    import numpy as np

    from edgequant.bench import host, settings
    from edgequant.evaluate.runner import SignatureModel
    from edgequant.tasks import boxes

    s = settings.Settings(runtime="litert", threads=1, num_runs=50, min_secs=1.0, parity_lsb=None)
    body = host.benchmark_in_subprocess(path, s)
    out = SignatureModel(path).predict({"image": x[:50]})
    times = []
    for i in range(len(out["class_logits"])):
        t0 = time.perf_counter()
        boxes.postprocess(out["box_regressions"][i], out["class_logits"][i], anchors)
        times.append((time.perf_counter() - t0) * 1e3)
    post = float(np.median(times))
    p50 = body["latency_ms"]["p50"]
    return {
        "body_p50_ms": p50,
        "postprocess_p50_ms": post,
        "end_to_end_ms": p50 + post,
        "threads": 1,
    }


def main(argv):
    import time
    from pathlib import Path

    import tf_keras as keras

    from edgequant import tasks, workspace, zoo
    from edgequant.edgetpu import check
    from edgequant.tasks import shapes

    work = Path(_WORKDIR.value)
    size = _SIZE.value
    start = time.perf_counter()
    data = {}
    for split, n, seed in (("train", _TRAIN.value, 0), ("eval", _EVAL.value, 1)):
        if not (work / split / "coco.json").is_file():
            shapes.write_dataset(work / split, n, size=size, seed=seed)
        truth = tasks.load_annotations(work / split / "coco.json", work / split / "images", 3)
        data[split] = (truth, shapes.load_images(truth))
    (train_truth, x_train), (eval_truth, x_eval) = data["train"], data["eval"]
    anchors = workspace.module("models", "ssd_tiny").anchors((size, size, 3))
    keras_path = work / "ssd_tiny.keras.h5"
    if keras_path.is_file():
        model = keras.models.load_model(keras_path, compile=False)
    else:
        keras.utils.set_random_seed(0)
        model = zoo.build("ssd_tiny", (size, size, 3), 3)
        labels, regs = targets(train_truth, anchors, size)
        train(model, x_train, labels, regs, _EPOCHS.value)
        model.save(keras_path)
    train_secs = time.perf_counter() - start
    calib = x_train[:200]
    paths = convert_all(model, calib, work / "models")
    report = {"train_images": len(x_train), "eval_images": len(x_eval), "anchors": len(anchors)}
    for name, p in paths.items():
        report[name] = score(p, eval_truth, x_eval, anchors)
    report["delta_map50_pp"] = 100 * (report["uint8"]["map50"] - report["fp32"]["map50"])
    report["delta_map_pp"] = 100 * (report["uint8"]["map"] - report["fp32"]["map"])
    (m,) = check.check_models([paths["uint8"]])
    d = m.to_dict()
    report["edgetpu"] = {
        "gate_passed": m.gate.passed,
        "mapped": f"{d['mapped_count']}/{d['op_count']}",
        "cpu_ops": d["cpu_ops"],
        "uncertain_ops": [f"{v.index} {v.op}" for v in m.analysis.uncertain_ops],
    }
    report["latency_uint8"] = latency(paths["uint8"], eval_truth, x_eval, anchors)
    report["latency_fp32"] = latency(paths["fp32"], eval_truth, x_eval, anchors)
    # 5. The postprocess quantized along with the body.
    joined = with_postprocess(model, anchors)
    qpaths = convert_all(joined, calib, work / "models", prefix="with_decode_")
    report["quantized_postprocess"] = {
        name: {k: score_decoded(p, eval_truth, x_eval)[k] for k in ("map50", "map")}
        for name, p in qpaths.items()
    }
    (mq,) = check.check_models([qpaths["uint8"]])
    dq = mq.to_dict()
    report["quantized_postprocess"]["edgetpu"] = {
        "gate_passed": mq.gate.passed,
        "gate": "passed" if mq.gate.passed else mq.gate.summary(),
        "mapped": f"{dq['mapped_count']}/{dq['op_count']}",
        "cpu_ops": dq["cpu_ops"],
    }
    if _DEPLOY.value:  # 6. The user's path: tools/deploy.py with the COCO JSON and anchors.
        import numpy as np
        import task_deploy

        np.save(work / "anchors.npy", anchors)
        report["deploy"] = task_deploy.deploy(
            keras_path,
            work / "train" / "images",
            work / "eval" / "images",
            work / "eval" / "coco.json",
            work / "bundle",
            _LOOPBACK.value,
            f"--anchors={work / 'anchors.npy'}",
        )
    report["seconds"] = {"train_and_data": train_secs, "total": time.perf_counter() - start}
    cli.report(report, _OUT.value)
    return 0


if __name__ == "__main__":
    cli.run(main)
