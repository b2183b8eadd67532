"""Benchmark: the batched evaluator vs a bare batched LiteRT loop on the same model, same run.

  python benchmarks/eval_throughput.py --model=runs/mnist/uint8.tflite --output_json=F

Both paths process the same 10,000 images (the test split, tiled when it is smaller) at the
same batch size and thread count. The bare loop gets pre-quantized input and only does
set_tensor/invoke/get_tensor; the evaluator (runner.SignatureModel, the package's one TFLite
runner) also quantizes inputs, resizes for the last batch and dequantizes every output by name. The ratio is what the evaluator keeps of the runtime's raw throughput.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODEL = flags.DEFINE_string("model", "runs/mnist/uint8.tflite", "A .tflite MNIST model.")
_N = flags.DEFINE_integer("num_images", 10_000, "Images per pass.")
_BATCH = flags.DEFINE_integer("batch_size", 500, "Images per invoke (both paths).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Passes per path; the best pass is reported.")
_OUT = flags.DEFINE_string("output_json", None, "Write the numbers here.")
cli.define_verbose_flag()


def main(argv):
    import time

    import numpy as np
    from ml_collections import ConfigDict

    from edgequant import datasets
    from edgequant.data import preprocess
    from edgequant.evaluate import artifact, runner
    from edgequant.report.manifest import versions

    model = runner.SignatureModel(_MODEL.value, _BATCH.value)
    inp = model.inputs[0]
    cfg = ConfigDict({"name": "mnist", "dir": "", "download": True, "val_fraction": 0.1})
    test = datasets.read(cfg).test
    reps = -(-_N.value // len(test.y))
    images = np.tile(test.x, (reps, 1, 1))[: _N.value]
    x = preprocess.apply_batch(images, datasets.preprocessing(inp.sample_shape))

    def evaluator():
        model.predict({inp.name: x})

    evaluator()  # settles the batch size: a model fixed at batch 1 falls back to it
    q = model._prepare(inp.name, x)  # the bare loop starts from already-quantized input
    b = model.batch_size
    batches = [q[i : i + b] for i in range(0, len(q) - b + 1, b)]
    interp = artifact.load_interpreter(_MODEL.value)
    index = interp.get_input_details()[0]["index"]
    interp.resize_tensor_input(index, [b, *q.shape[1:]])
    interp.allocate_tensors()
    outs = [d["index"] for d in interp.get_output_details()]

    def bare():
        for chunk in batches:
            interp.set_tensor(index, chunk)
            interp.invoke()
            for o in outs:
                interp.get_tensor(o)

    def best_rate(fn, n):
        fn()  # warm-up
        times = []
        for _ in range(_REPEATS.value):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return n / min(times)

    bare_rate = best_rate(bare, len(batches) * b)
    eval_rate = best_rate(evaluator, len(x))
    result = {
        "model": _MODEL.value,
        "num_images": len(x),
        "batch_size": b,
        "evaluator_images_per_s": eval_rate,
        "bare_loop_images_per_s": bare_rate,
        "ratio": eval_rate / bare_rate,
        "versions": versions(),
    }
    print(
        f"evaluator: {eval_rate:,.0f} images/s   bare LiteRT loop: {bare_rate:,.0f} images/s   "
        f"ratio {result['ratio']:.2f} ({len(x)} images, batch {b})"
    )
    cli.report(result, _OUT.value)
    return 0


if __name__ == "__main__":
    cli.run(main)
