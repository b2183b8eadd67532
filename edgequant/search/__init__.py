"""Accuracy-targeted quantization search (autoquant)."""
