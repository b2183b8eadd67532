"""Stage 1 of the flow: datasets, splits and the representative (calibration) set."""
