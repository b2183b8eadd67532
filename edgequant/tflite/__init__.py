"""Reading .tflite flatbuffers without an interpreter: ops, op versions, tensors, dataflow."""
