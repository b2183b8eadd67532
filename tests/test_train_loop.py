"""One training loop (float training and QAT fine-tuning) and one Keras accuracy evaluator.

Tiny real models on a few hundred real digits: `fit.train` and `qat.fine_tune` must be the same
loop (history keys, per-epoch logs, seeding), and `evaluate_keras` must predict at the batch
size it is given without that size changing the accuracy.
"""

import dataclasses

import numpy as np
import pytest

from edgequant.data.dataset import Dataset
from edgequant.evaluate import accuracy
from edgequant.train import fit, qat

EPOCH_KEYS = {"loss", "accuracy", "val_loss", "val_accuracy"}


def _head(prepared, **sizes) -> Dataset:
    """The first `sizes[split]` samples of each named split of `prepared`, as a Dataset."""
    parts = {}
    for name, n in sizes.items():
        x, y = fit.features(prepared.require(name))
        parts[name] = (x[:n], y[:n])
    return Dataset.from_parts("mnist", prepared.source, parts, prepared.num_classes)


@pytest.fixture(scope="module")
def small(prepared):
    """200 training and 60 validation digits (60 % 32 != 0: a short last batch too)."""
    return _head(prepared, train=200, val=60)


def _config(qat_epochs: int):
    from edgequant import workspace

    c = workspace.config("mnist_qat")
    c.train.epochs = 1
    c.train.augment.enabled = True  # the float run augments; QAT must not
    c.qat.epochs = qat_epochs
    return c


def _model():
    from edgequant import zoo

    fit.set_seed(0)
    return zoo.build("mnist_cnn", (28, 28, 1), 10, filters=(4, 8), dense_units=16, dropout=0.0)


def _event_dirs(root) -> list[str]:
    """The folders (under root) that hold TensorBoard event files."""
    return sorted({p.parent.relative_to(root).as_posix() for p in root.rglob("events.out.*")})


def test_float_training_and_qat_fine_tuning_are_one_loop(small, tmp_path):
    config = _config(qat_epochs=2)
    model = _model()
    trained = fit.train(model, small, config, tmp_path, verbose=0)
    assert set(trained.history) == EPOCH_KEYS
    assert len(trained.history["loss"]) == config.train.epochs
    assert trained.val_accuracy == trained.history["val_accuracy"][-1]

    qat_model = qat.apply(qat.annotate(model))
    before = [w.copy() for w in qat_model.get_weights()]
    tuned = qat.fine_tune(qat_model, small, config, tmp_path, verbose=0)
    # The same loop: the same per-epoch history, now over config.qat.epochs epochs.
    assert set(tuned.history) == set(trained.history)
    assert len(tuned.history["loss"]) == config.qat.epochs == 2
    assert tuned.val_accuracy == tuned.history["val_accuracy"][-1]
    assert tuned.model is qat_model
    assert any(
        not np.array_equal(a, b) for a, b in zip(before, qat_model.get_weights(), strict=True)
    )
    # ... and the same per-epoch log: TensorBoard train/validation events under its own name.
    board = tmp_path / "tensorboard"
    assert _event_dirs(board / "float") == _event_dirs(board / "qat") == ["train", "validation"]
    assert (tmp_path / "float.keras").is_file() and (tmp_path / "history.json").is_file()


def test_the_loop_is_seeded_and_augments_only_when_asked(small, tmp_path):
    """Same seed, same start, same history; `augment` changes what the float run sees."""
    config = _config(qat_epochs=1)
    start = _model().get_weights()

    def run(augment: bool, name: str) -> dict:
        model = _model()
        model.set_weights(start)
        return fit.run_loop(
            model,
            small,
            config,
            tmp_path,
            epochs=1,
            learning_rate=1e-3,
            log_name=name,
            augment=augment,
            verbose=0,
        ).history

    plain = run(False, "a")
    assert run(False, "b") == plain
    assert run(True, "c")["loss"] != plain["loss"]


def test_qat_learning_rate_without_a_qat_block_is_a_tenth_of_the_float_one(small, tmp_path):
    """autoquant's configs have no qat block: epochs are given, the learning rate derived."""
    config = _config(qat_epochs=1)
    del config.qat
    model = qat.apply(qat.annotate(_model()))
    tuned = qat.fine_tune(model, small, config, tmp_path, epochs=1, verbose=0)
    assert len(tuned.history["loss"]) == 1 and set(tuned.history) == EPOCH_KEYS
    # The loop's one schedule: cosine decay over every step of the run (200 samples, batch 32).
    schedule = model.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "CosineDecay"
    assert schedule["config"]["initial_learning_rate"] == pytest.approx(
        config.train.learning_rate / 10
    )
    assert schedule["config"]["decay_steps"] == 7


def test_keras_accuracy_does_not_depend_on_the_batch_size(tiny_model, test_images):
    x, y = test_images[0][:101], test_images[1][:101]  # 101: no batch size below divides it
    whole = accuracy.evaluate_keras(tiny_model, x, y, batch_size=len(x))
    expected = tiny_model(x, training=False).numpy().argmax(-1)
    assert whole.accuracy == pytest.approx(np.mean(expected == y))
    for b in (1, 7, 32, 1000):
        acc = accuracy.evaluate_keras(tiny_model, x, y, batch_size=b)
        assert acc.n == 101
        assert acc.accuracy == whole.accuracy, b
        np.testing.assert_array_equal(acc.predicted, whole.predicted)


def test_keras_accuracy_predicts_at_the_batch_size_it_is_given():
    """A layer that centres each batch on its mean scores samples differently in different
    batches, so its predictions show the batch size predict really used."""
    import tensorflow as tf
    import tf_keras as keras

    inp = keras.Input((3,))
    out = keras.layers.Lambda(lambda t: t - tf.reduce_mean(t, axis=0, keepdims=True))(inp)
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).normal(size=(23, 3)).astype(np.float32)
    y = np.zeros(23, np.int64)

    def by_chunks(b: int) -> np.ndarray:
        return np.concatenate(
            [(c - c.mean(0, keepdims=True)).argmax(-1) for c in np.split(x, range(b, len(x), b))]
        )

    for b in (4, 23):
        got = accuracy.evaluate_keras(model, x, y, batch_size=b)
        np.testing.assert_array_equal(got.predicted, by_chunks(b))
    assert not np.array_equal(by_chunks(4), by_chunks(23))  # the check can tell sizes apart


def test_accuracy_results_compare_by_their_numbers():
    """The predictions ride along for agreement checks but are not part of equality."""
    a = accuracy.Accuracy(0.5, 2, 1.0, np.array([0, 1]))
    assert a == dataclasses.replace(a, predicted=np.array([1, 1]))
    assert a.to_dict() == {"accuracy": 0.5, "n": 2, "seconds": 1.0, "images_per_s": 2.0}


def test_qat_stage_fine_tunes_through_the_loop_and_scores_with_the_evaluator(
    tiny_model, prepared, representative, tmp_path
):
    """The one QAT stage, 8-bit and n-bit, on a batch size that divides nothing here."""
    from edgequant import pipeline
    from edgequant.train import qat_stage

    config = _config(qat_epochs=1)
    config.evaluate.batch_size = 7
    config.quantize.calibration_size = len(representative)
    data = _head(prepared, train=200, val=60, test=101)
    float_acc = accuracy.evaluate_keras(tiny_model, *fit.features(data.test), 7).accuracy
    results: dict = {"variants": [], "errors": [], "recovery": []}
    study = pipeline.study_of(config, tmp_path, data, tiny_model, {"path": "float.keras"})
    made = qat_stage.qat_stage(study, results)
    q = results["qat"]
    assert results["errors"] == [] and [v["name"] for v in made] == ["qat_uint8", "qat_int8"]
    # Fine-tuned from a ~90% model for one short epoch: still a classifier, and the converted
    # models agree with the QAT Keras model the evaluator scored.
    assert abs(q["keras_accuracy"] - float_acc) <= 0.1, (q["keras_accuracy"], float_acc)
    assert round(q["keras_accuracy"] * 101) == pytest.approx(q["keras_accuracy"] * 101)
    assert min(q["parity"].values()) >= 0.95, q["parity"]
    assert 0 < q["nbit"]["keras_accuracy"] <= 1
    board = tmp_path / "tensorboard"
    assert _event_dirs(board / "qat") == _event_dirs(board / "qat_nbit") == ["train", "validation"]
