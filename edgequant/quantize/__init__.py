"""Stage 3 of the flow: quantization recipes (data) and the conversions that apply them."""
