"""Top-1 accuracy of a .tflite or .keras model on the MNIST test split.

  python tools/evaluate.py --model=runs/mnist/uint8.tflite --dataset=mnist [--data_dir=DIR] \
      [--output_json=F]
A --data_dir holding only the two t10k files evaluates on those 10,000 images.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "A .tflite or .keras model.")
_DATASET = flags.DEFINE_enum("dataset", "mnist", ["mnist"], "Dataset to evaluate on.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "IDX files or mnist.npz; empty = default resolution."
)
_BATCH = flags.DEFINE_integer("batch_size", 500, "Images per interpreter invoke.")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Split seed (must match training's for the offline digits)."
)
_OUT = flags.DEFINE_string("output_json", None, "Write {accuracy, n, ...} here.")
flags.mark_flag_as_required("model")
cli.define_verbose_flag()


def main(argv):
    import json
    from pathlib import Path

    from edgequant.data import mnist
    from edgequant.evaluate import accuracy

    path = Path(_MODEL.value)
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    data = mnist.load(_DATA_DIR.value, download=True, seed=_SEED.value)
    test = data.require("test")
    if path.suffix == ".keras":
        from edgequant.train import fit

        model = fit.load_model(path)
        x = mnist.preprocess(test.x, tuple(model.input_shape[1:]))
        result = accuracy.evaluate_keras(model, x, test.y, _BATCH.value)
    elif path.suffix == ".tflite":
        model = accuracy.BatchedModel(path, _BATCH.value)
        classes = int(model.out["shape"][-1])
        if classes != mnist.NUM_CLASSES:
            raise ValueError(
                f"{path.name} outputs {classes} classes; {_DATASET.value} has {mnist.NUM_CLASSES}"
            )
        x = mnist.preprocess(test.x, model.input_shape)
        result = accuracy.evaluate_tflite(model, x, test.y)
    else:
        raise ValueError(f"unsupported model file {path.name}: expected .tflite or .keras")
    out = {**result.to_dict(), "model": str(path), "dataset": data.info()}
    print(f"accuracy {100 * result.accuracy:.2f}% on {result.n} test images from {data.source}")
    if _OUT.value:
        Path(_OUT.value).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    cli.run(main)
