"""Measures repair on the demonstration model: LeakyReLU, hard-swish written as layers, GELU and
a dynamic batch, in both Keras flavours, with and without --approximate.

  python benchmarks/edgetpu_repair.py --out_dir=/tmp/etpu_demo [--samples=64]
Prints the plain-conversion mapping, every rewrite with its measured max output error, and the
mapping after repair; writes results.json and the demo/fixed models into out_dir.
"""

from edgequant import atomic, cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_OUT = flags.DEFINE_string("out_dir", "/tmp/etpu_demo", "Where models and results.json go.")
_SAMPLES = flags.DEFINE_integer("samples", 64, "Seeded standard-normal calibration samples.")
cli.define_verbose_flag()


def demo_model(k):
    L = k.layers
    inputs = k.Input((32, 32, 3))  # batch left dynamic
    x = L.Conv2D(16, 3, padding="same")(inputs)
    x = L.LeakyReLU(0.1)(x)
    x = L.Conv2D(16, 3, padding="same")(x)
    s = L.ReLU(6.0)(L.Rescaling(1.0, 3.0)(x))  # hard-swish written as layers
    x = L.Rescaling(1 / 6)(L.Multiply()([x, s]))
    x = L.Conv2D(16, 3, strides=2, padding="same")(x)
    x = L.Activation("gelu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return k.Model(inputs, L.Dense(10)(x))


def main(argv):
    from pathlib import Path

    import keras
    import tf_keras

    from edgequant.edgetpu import keras_graph, repair

    out = Path(_OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, k, suffix in (("tf_keras", tf_keras, ".h5"), ("keras3", keras, ".keras")):
        k.utils.set_random_seed(0)
        model = demo_model(k)
        src = keras_graph.save(model, out / f"demo_{name}{suffix}")
        samples = keras_graph.synthetic_calibration(model, _SAMPLES.value)
        for approximate in (False, True):
            tag = f"{name}{'_approximate' if approximate else ''}"
            fixed = out / f"fixed_{tag}{suffix}"
            result = repair.repair_file(src, fixed, samples, approximate)
            results[tag] = result.to_dict()
            print(f"== {tag} ({src.name} -> {fixed.name})")
            print(result.summary())
    atomic.write_json(out / "results.json", results)
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    cli.run(main)
