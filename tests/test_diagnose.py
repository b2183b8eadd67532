"""Per-layer error, the denylist (mixed precision) path and the diagnosis stage."""

import numpy as np
import pytest

from edgequant.diagnose import layers
from edgequant.evaluate import artifact
from tests.conftest import class_scores


@pytest.fixture(scope="module")
def errors(tiny_model, representative, test_images):
    return layers.layer_errors(tiny_model, representative, test_images[0][:32])


def test_layer_errors_are_ranked_worst_first_with_scale_normalised_rmse(errors):
    assert len(errors) >= 4 and [e.rank for e in errors] == list(range(1, len(errors) + 1))
    values = [e.rmse_over_scale for e in errors]
    assert values == sorted(values, reverse=True) and all(v >= 0 for v in values)
    assert {e.op_name for e in errors} >= {"CONV_2D", "FULLY_CONNECTED"}


def test_layer_errors_csv_and_plot_are_written(errors, tmp_path):
    csv_path = layers.write_csv(errors, tmp_path / "layer_errors.csv")
    assert (
        csv_path.read_text().splitlines()[0].startswith("rank,tensor_name,op_name,rmse_over_scale")
    )
    png = layers.plot(errors, tmp_path / "layer_errors.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "worst layers are" in layers.summary_sentence(errors)


def test_denylisted_layers_stay_float_and_the_model_still_works(
    errors, tiny_model, representative, test_images, tmp_path
):
    x, _ = test_images
    worst = errors[0]
    path = tmp_path / "mixed.tflite"
    path.write_bytes(
        layers.denylisted_model(tiny_model, representative, x[:8], [worst.tensor_name])
    )
    interp = artifact.load_interpreter(path)
    by_name = {t["name"]: t for t in interp.get_tensor_details()}
    assert by_name[worst.tensor_name]["dtype"] == np.float32
    expected = tiny_model.predict(x, verbose=0).argmax(-1)
    assert np.mean(class_scores(path, x).argmax(-1) == expected) >= 0.97
