"""Diagnosis when quantization costs accuracy: per-layer error, calibration check, denylists."""
