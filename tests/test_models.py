"""The model zoo: name resolution, options, and the function-preserving channel widening."""

import numpy as np
import pytest

from edgequant import zoo


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="valid models: mnist_cnn, mobilenet_v2"):
        zoo.build("resnet", (28, 28, 1), 10)


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match=r"no option\(s\) \['width'\]; valid options: \['alpha'"):
        zoo.build("mobilenet_v2", (32, 32, 1), 10, width=2)


def test_mobilenet_v2_takes_width_multiplier_and_input_size():
    small = zoo.build("mobilenet_v2", (32, 32, 1), 10, alpha=0.35)
    big = zoo.build("mobilenet_v2", (48, 48, 3), 10, alpha=1.0)
    assert small.input_shape == (None, 32, 32, 1) and big.input_shape == (None, 48, 48, 3)
    assert small.count_params() < big.count_params()


def test_widening_a_channel_keeps_outputs_and_widens_its_range(tiny_model, test_images):
    import tf_keras as keras

    x, _ = test_images
    model = keras.models.clone_model(tiny_model)
    model.set_weights(tiny_model.get_weights())
    probe = keras.Model(model.input, model.get_layer("relu0").output)
    before_out, before_act = model.predict(x[:50], verbose=0), probe.predict(x[:50], verbose=0)
    zoo.widen_activation_range(model, "bn0", "conv1", channel=0, factor=100.0)
    after_out, after_act = model.predict(x[:50], verbose=0), probe.predict(x[:50], verbose=0)
    np.testing.assert_allclose(after_out, before_out, atol=1e-4)
    np.testing.assert_allclose(after_act[..., 0], 100.0 * before_act[..., 0], rtol=1e-4, atol=1e-4)
