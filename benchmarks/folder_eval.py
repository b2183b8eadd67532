"""Throughput of evaluating an image folder through edgequant vs a bare tf.data + LiteRT loop.

  python benchmarks/folder_eval.py --model=bundle/uint8.tflite --folder=images/ [--output_json=F]

Both sides decode the same PNG/JPEG files with tf.data and invoke the same model with the same
batch; the bare loop does nothing else (no quantization helpers, no metrics, no labels
bookkeeping), so the ratio is edgequant's own overhead. Peak RSS is reported for the whole
process: the folder streams, so it is bounded by the batch, not by the number of images.
The images are fed by the preprocessing embedded in the model (a bundle's models carry it); a
model without one needs --input_range or --mean/--std: the pixel range is never guessed.
"""

from edgequant import cli, workspace

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "A .tflite classifier.")
_FOLDER = flags.DEFINE_string("folder", None, "Image folder (class subfolders).")
_RANGE = flags.DEFINE_string(
    "input_range", None, "Pixel 0..255 -> LO,HI (default: the model's embedded preprocessing)."
)
_MEAN = flags.DEFINE_string("mean", None, "Per-channel mean in pixel units (or --input_range).")
_STD = flags.DEFINE_string("std", None, "Per-channel std in pixel units (with --mean).")
_LABELS = flags.DEFINE_string("labels", None, "labels.txt in the model's class order.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Images per invoke, both sides.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Alternating runs of each side; the best counts.")
_OUT = flags.DEFINE_string("output_json", None, "Write the numbers here too.")
_TRUST = cli.define_trust_flag()
flags.mark_flags_as_required(["model", "folder"])
cli.define_verbose_flag()


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare_loop(model_path: str, folder_source, batch_size: int) -> tuple[int, float]:
    """tf.data decode + preprocess, then set_tensor/invoke/get_tensor, nothing else."""
    import time

    import numpy as np

    from edgequant.evaluate.artifact import load_interpreter

    interp = load_interpreter(model_path)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    scale, zp = inp["quantization"]
    lo, hi = (np.iinfo(inp["dtype"]).min, np.iinfo(inp["dtype"]).max) if scale else (0, 0)
    shape = [int(d) for d in inp["shape"]]
    step = shape[0]  # a model traced with batch 1 (the Edge TPU form) is invoked per image
    try:
        interp.resize_tensor_input(inp["index"], [batch_size, *shape[1:]])
        interp.allocate_tensors()
        interp.invoke()
        step = batch_size
    except (ValueError, RuntimeError):
        interp = load_interpreter(model_path)
    ds = folder_source.dataset(np.arange(folder_source.size), batch_size)
    n = 0
    start = time.perf_counter()
    for x, _ in ds.as_numpy_iterator():
        q = np.clip(np.round(x / scale) + zp, lo, hi).astype(inp["dtype"]) if scale else x
        for i in range(0, len(q), step):
            chunk = q[i : i + step]
            if len(chunk) != step:  # the last, short batch
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *shape[1:]), q.dtype)])
            interp.set_tensor(inp["index"], chunk)
            interp.invoke()
            interp.get_tensor(out["index"])
        n += len(x)
    return n, time.perf_counter() - start


def edgequant_eval(
    model_path: str, split, batch_size: int, trust_code: bool = False
) -> tuple[dict, float]:
    """What `tools/evaluate.py` does: the library's evaluation of one model."""
    import time

    deploy = workspace.config_module("deploy")
    from edgequant import usermodel
    from edgequant.flow import prepare

    config = deploy.get_config()
    config.evaluate.batch_size = batch_size
    start = time.perf_counter()
    model = usermodel.load(model_path, config.model.signature, trust_code=trust_code)
    result = prepare.evaluate_model(config, model, split)
    return result, time.perf_counter() - start


def main(argv):
    from edgequant import usermodel
    from edgequant.bench import device_runner
    from edgequant.data import preprocess, sources

    trust = bool(_TRUST.value)
    model = usermodel.load(_MODEL.value, trust_code=trust)
    if len(model.inputs) != 1:
        raise cli.UserError(
            f"an image folder feeds a one-input model; {_MODEL.value} has {len(model.inputs)}"
        )
    spec = preprocess.resolve(
        model.inputs[0].sample_shape,
        model.normalizes_input(),
        input_range=preprocess.parse_floats(_RANGE.value, "input_range"),
        mean=preprocess.parse_floats(_MEAN.value, "mean"),
        std=preprocess.parse_floats(_STD.value, "std"),
        embedded=preprocess.embedded_in(model),
    )
    names = sources.read_class_names(_LABELS.value) if _LABELS.value else None
    src = sources.open_source(_FOLDER.value, model.inputs, lambda: spec, class_names=names)
    split = sources.everything(src, "all")
    best_eq, best_bare, result = float("inf"), float("inf"), None
    for _ in range(_REPEATS.value):
        n_bare, t_bare = bare_loop(_MODEL.value, src, _BATCH.value)
        result, t_eq = edgequant_eval(_MODEL.value, split, _BATCH.value, trust)
        best_bare, best_eq = min(best_bare, t_bare), min(best_eq, t_eq)
    report = {
        "images": src.size,
        "edgequant_images_per_s": src.size / best_eq,
        "bare_images_per_s": n_bare / best_bare,
        "ratio": (src.size / best_eq) / (n_bare / best_bare),
        "top1": result["top1"],
        "peak_rss_mb": peak_rss_mb(),
        "batch_size": _BATCH.value,
        "environment": device_runner.collect_environment(),
    }
    print(
        f"{report['images']} images: edgequant {report['edgequant_images_per_s']:.0f} img/s, "
        f"bare tf.data+LiteRT {report['bare_images_per_s']:.0f} img/s, ratio "
        f"{report['ratio']:.2f}; top-1 {100 * report['top1']:.2f}%; peak RSS "
        f"{report['peak_rss_mb']:.0f} MB"
    )
    cli.report(report, _OUT.value)
    return 0


if __name__ == "__main__":
    cli.run(main)
