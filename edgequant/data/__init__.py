"""Stage 1 of the flow: the generic data layer.

Sources (`sources/`: image folders, arrays, TFRecord, callables, in-memory arrays) with their
one split type (`sources.Split`, a seeded index set), the in-memory `dataset.Dataset` of a
training run, preprocessing, seeded splits, the representative set and the calibration-vs-
evaluation statistics. It names no dataset: named training datasets are `edgequant.datasets`.
"""
