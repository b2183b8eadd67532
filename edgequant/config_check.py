"""Checks a whole config before any work starts, so a typo costs a second, not a training run.

Every stage still checks what it uses, but only when it runs: a bad recipe name or calibration
size used to surface after float training (70 s and more with the default config). `validate`
looks at every block the pipeline reads, collects every problem, and raises one ValueError that
names each key, the bad value and what is allowed. It also normalises the one convenience the
command line needs: `--config.quantize.recipes=fp32,int8` arrives as the one-element tuple
`('fp32,int8',)` (ml_collections keeps the tuple type and does not split), and is split here.
"""

from __future__ import annotations

import re

DISTRIBUTE = ("none", "mirrored", "multi_worker")


_STUDY = "configs/mnist.py (the training study)"
# Keys configs/deploy.py carried while it inherited the study's config, and where they live now:
# a locked config refuses them, and this says why instead of "bad flag: 'dir'".
MOVED = {
    "train": f"training settings belong to {_STUDY}; a deployment fine-tunes only in "
    "recovery (recovery.qat_epochs, recovery.qat_learning_rate, recovery.qat_batch_size)",
    "distribute": f"distributed training belongs to {_STUDY}",
    "data.name": f"named training datasets belong to {_STUDY}; a deployment reads data.path, "
    "and tools/evaluate.py --dataset=NAME evaluates on one",
    "data.dir": "a deployment reads data.path (data.dir is a named training dataset's folder)",
    "data.download": f"named training datasets belong to {_STUDY}; a deployment reads data.path",
    "data.val_fraction": "a deployment holds out data.holdout_fraction of data.path",
    "model.name": f"zoo models belong to {_STUDY}; a deployment's model is model.path",
    "model.input_shape": "a deployment reads the input shape from model.path",
    "model.options": f"zoo model options belong to {_STUDY}; a deployment's model is model.path",
}


def moved_key_hint(argv, error: str) -> str | None:
    """The one line for a `--config.KEY` that `error` refused and MOVED explains, else None."""
    for arg in argv:
        if not arg.startswith("--config."):
            continue
        key = arg[len("--config.") :].split("=", 1)[0]
        for moved, hint in MOVED.items():
            # The config refused the moved key itself ('train'), not a misspelled key inside a
            # block the config does have (the study's train.epohcs: "did you mean epochs").
            refused = re.search(rf"\b{moved.split('.')[-1]}\b", error) is not None
            if (key == moved or key.startswith(moved + ".")) and refused:
                return f"--config.{key}: {hint}"
    return None


def _names(value) -> tuple[str, ...]:
    """A recipe list from a tuple/list of names or comma-separated strings."""
    if isinstance(value, str):
        value = (value,)
    out: list[str] = []
    for item in value or ():
        out.extend(s.strip() for s in str(item).split(",") if s.strip())
    return tuple(out)


def set_key(config, dotted: str, value) -> None:
    """Sets `config.a.b = value` from "a.b"; an unknown key names itself (ValueError)."""
    *sections, name = dotted.split(".")
    node = config
    for section in sections:
        if section not in node:
            raise ValueError(f"unknown config key '{dotted}'")
        node = node[section]
    if name not in node:
        raise ValueError(f"unknown config key '{dotted}'")
    node[name] = value


def _set(block, key: str, value) -> None:
    with block.ignore_type():
        block[key] = value


class _Problems(list):
    def integer(self, block, key: str, path: str, minimum: int) -> None:
        if block is None or key not in block:
            return
        v = block[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            self.append(f"{path}.{key} must be {what}, got {v!r}")

    def number(
        self,
        block,
        key: str,
        path: str,
        low: float,
        high: float | None = None,
        inclusive: bool = False,
    ) -> None:
        if block is None or key not in block:
            return
        v = block[key]
        ok = isinstance(v, int | float) and not isinstance(v, bool) and v >= low
        if ok and high is not None:
            ok = v <= high if inclusive else v < high
        if not ok:
            bound = f">= {low}" if high is None else f"in [{low}, {high}{']' if inclusive else ')'}"
            self.append(f"{path}.{key} must be a number {bound}, got {v!r}")

    def choice(self, value, valid, path: str, noun: str) -> None:
        if value not in valid:
            self.append(f"{path}: unknown {noun} '{value}'; valid: {', '.join(valid)}")


def validate(config) -> None:
    """Raises ValueError naming every invalid setting in `config`; splits comma-separated recipes."""
    from edgequant import datasets, zoo
    from edgequant.data import sources
    from edgequant.quantize import aeq, recipes

    p = _Problems()
    p.integer(config, "seed", "config", 0)
    p.choice(config.get("distribute", "none") or "none", DISTRIBUTE, "distribute", "strategy")

    model = config.get("model")
    # The user's model (model.path: configs/deploy.py) has no zoo name, shape or dataset.
    deploying = model is not None and ("path" in model or "name" not in model)
    if model is not None and not deploying:
        p.choice(model.name, zoo.names(), "model.name", "model")
        shape = tuple(model.get("input_shape", ()) or ())
        if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
            p.append(f"model.input_shape must be positive integers, got {shape!r}")

    data = config.get("data")
    if data is not None:
        if "name" in data and not deploying:
            p.choice(data.name, datasets.NAMES, "data.name", "dataset")
        if data.get("kind", "auto") not in sources.KINDS:
            p.append(
                f"data.kind: unknown kind '{data.kind}'; valid: {', '.join(sources.KINDS)} "
                "(a named training dataset is data.name, or tools/evaluate.py --dataset=NAME)"
            )
        p.number(data, "val_fraction", "data", 0.0, 1.0)
        p.number(data, "holdout_fraction", "data", 1e-9, 1.0)
        p.number(data, "max_corrupt_fraction", "data", 0.0, 1.0)
        p.integer(data, "max_samples", "data", 1)
        p.integer(data, "max_eval", "data", 0)

    train = config.get("train")
    p.integer(train, "batch_size", "train", 1)
    p.integer(train, "epochs", "train", 0)
    p.number(train, "learning_rate", "train", 1e-12)

    q = config.get("quantize")
    if q is not None:
        names = _names(q.get("recipes", ()))
        if names != tuple(q.get("recipes", ()) or ()):
            _set(q, "recipes", names)
        for name in names:
            p.choice(name, recipes.PTQ_RECIPES, "quantize.recipes", "recipe")
        aeq_names = _names(q.get("aeq_recipes", ()))
        if "aeq_recipes" in q and aeq_names != tuple(q.aeq_recipes or ()):
            _set(q, "aeq_recipes", aeq_names)
        for name in aeq_names:
            p.choice(name, aeq.RECIPES, "quantize.aeq_recipes", "AI Edge Quantizer recipe")
        p.choice(
            q.get("weights", "per_channel"),
            [g.value for g in recipes.Granularity],
            "quantize.weights",
            "weight granularity",
        )
        if "calibration_size" in q:
            v = q.calibration_size
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                p.append(f"quantize.calibration_size must be positive, got {v!r}")

    p.integer(config.get("evaluate"), "batch_size", "evaluate", 1)

    diag = config.get("diagnose")
    p.integer(diag, "min_calibration", "diagnose", 0)
    p.integer(diag, "debug_samples", "diagnose", 1)
    if diag is not None and any(
        isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in diag.get("denylist_k", ())
    ):
        p.append(f"diagnose.denylist_k must be integers >= 1, got {tuple(diag.denylist_k)!r}")

    p.integer(config.get("edgetpu"), "min_runtime_version", "edgetpu", 0)
    if "target" in config:
        from edgequant.targets import TARGETS

        p.choice(config.target, TARGETS, "target", "target")
    budget = config.get("budget")
    for key in ("max_drop_pp", "min_sqnr_db", "max_drop_map_pp", "max_drop_miou_pp"):
        p.number(budget, key, "budget", 0.0)  # a negative drop would demand beating float
    p.number(budget, "min_top1", "budget", 0.0, 1.0, inclusive=True)
    recovery = config.get("recovery")
    p.integer(recovery, "large_calibration_size", "recovery", 1)
    p.integer(recovery, "validation_size", "recovery", 1)
    p.integer(recovery, "qat_epochs", "recovery", 0)
    p.integer(recovery, "qat_samples", "recovery", 1)

    bench = config.get("bench")
    if bench is not None:
        from edgequant.bench import settings  # the one home of the bench rules

        p += settings.config_problems(bench)
        _check_devices(bench, p)

    qat = config.get("qat")
    if qat is not None and qat.get("enabled", False):
        p.integer(qat, "epochs", "qat", 0)
        p.number(qat, "learning_rate", "qat", 1e-12)
        nbit = tuple(qat.get("nbit", ()) or ())
        if nbit and (
            len(nbit) != 2 or any(not isinstance(b, int) or not 2 <= b <= 8 for b in nbit)
        ):
            p.append(f"qat.nbit must be () or (weight_bits, activation_bits) in 2..8, got {nbit!r}")

    if config.get("autoquant") is not None:
        p.append(
            "config.autoquant is now the recovery ladder: set config.target, "
            "config.budget.max_drop_pp and config.recovery.* (see configs/mnist_autoquant.py)"
        )

    if p:
        raise ValueError("invalid config: " + "; ".join(p))


def _check_devices(bench, p: _Problems) -> None:
    """Device names must be in the inventory; `user@host[:port]` needs no inventory entry, and
    with no inventory at all (bench.inventory = "") names are the user's ssh host aliases."""
    from edgequant.bench import inventory

    names = tuple(bench.get("devices", ()) or ())
    bare = [n for n in names if "@" not in n and ":" not in n]
    if not bare:
        return
    path = bench.get("inventory", "") or ""
    if not path:
        return
    try:
        located = inventory.locate(path)  # the same lookup the benchmark stage makes
    except FileNotFoundError:
        p.append(
            f"bench.devices {bare} need the device inventory, but bench.inventory "
            f"'{path}' is not a file; give user@host:port or fix bench.inventory"
        )
        return
    try:
        known = inventory.load(located)
    except ValueError as e:
        p.append(str(e))
        return
    for n in bare:
        if n not in known:
            p.append(f"bench.devices: unknown device '{n}'; devices in {path}: {', '.join(known)}")
