"""The no-op QuantizeConfig, in a leaf module both the training loop and QAT import.

The loop (`fit.replica`) clones QAT-annotated models under a strategy and must know the config
to deserialize them; QAT builds on the loop. Kept in `qat.py`, the two would import each other.
"""

from __future__ import annotations


def noop_quantize_config():
    """A QuantizeConfig that quantizes nothing inside the layer: its inputs and outputs keep the
    quantization of their neighbours. Sound only for layers that move or select values."""
    import tensorflow_model_optimization as tfmot

    class NoOpQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    return NoOpQuantizeConfig
