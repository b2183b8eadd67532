"""Stage 4 of the flow: accuracy of Keras and TFLite models, and what each artifact contains."""


def __getattr__(name: str):
    # `evaluate.inspect` was renamed `evaluate.artifact` (a module named inspect shadows the
    # standard library when this folder is on sys.path); the old name resolves until every
    # caller has moved. There is no inspect.py file any more.
    if name == "inspect":
        from edgequant.evaluate import artifact

        return artifact
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
