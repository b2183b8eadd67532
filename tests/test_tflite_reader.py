"""The one op histogram and float-op detector read the flatbuffer, not the interpreter's plan.

The interpreter's private op list adds the nodes XNNPACK creates (`DELEGATE`), which are not ops
of the file; the old detector counted them as float ops, so a full-integer int8_fallback model
was reported "mixed".
"""

import collections

import flatbuffers
import pytest
from tensorflow.lite.python import schema_py_generated as schema

from edgequant.evaluate import artifact
from edgequant.tflite.model import TFLiteModel

QUANT = ("mobilenet_v1_0.25_128_quant", "keras_lstm_mnist_ptq", "split_concat")


@pytest.mark.parametrize("name", QUANT)
def test_histogram_is_the_files_ops_without_delegate_nodes(coral_dir, name):
    path = coral_dir / f"{name}.tflite"
    model = TFLiteModel.load(path)
    interp = artifact.load_interpreter(path)
    planned = collections.Counter(op["op_name"] for op in interp._get_ops_details())
    assert planned["DELEGATE"] > 0  # XNNPACK took part of the graph
    del planned["DELEGATE"]
    assert model.op_histogram() == dict(sorted(planned.items()))
    assert sum(model.op_histogram().values()) == len(model.operators)
    assert artifact.describe(path)["op_histogram"] == model.op_histogram()


@pytest.mark.parametrize("name", QUANT)
def test_integer_models_have_no_float_ops(coral_dir, name):
    assert TFLiteModel.load(coral_dir / f"{name}.tflite").float_ops() == []


def test_float_op_inside_an_integer_model_is_found(coral_dir):
    # Rewrite one int8/uint8 activation of a real model to FLOAT32 in the flatbuffer: the ops
    # touching it, and only those, become float ops.
    path = coral_dir / "mobilenet_v1_0.25_128_quant.tflite"
    obj = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    graph = obj.subgraphs[0]
    target = graph.operators[3].outputs[0]  # an activation between two ops
    graph.tensors[target].type = schema.TensorType.FLOAT32
    b = flatbuffers.Builder(0)
    b.Finish(obj.Pack(b), file_identifier=b"TFL3")
    model = TFLiteModel(bytes(b.Output()))
    touching = [
        f"{op.index}:{op.label}"
        for op in model.operators
        if target in op.inputs or target in op.outputs
    ]
    assert len(touching) == 2 and model.float_ops() == touching
