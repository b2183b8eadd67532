"""What every binary in tools/ shares: quiet TensorFlow start-up and one-line failures.

Binaries stay thin: they define flags, call one library function inside `run`, and exit with its
status. Library code raises `UserError` (or ValueError/FileNotFoundError for bad input); `run`
turns those into a single `error: ...` line on stderr and exit status 2, so users see what to fix
instead of a converter traceback. `--verbose` keeps TensorFlow's logs and full tracebacks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def project_path(relative: str) -> str:
    """A path inside the project, so a binary's default config works from any directory."""
    return str(PROJECT / relative)


class UserError(Exception):
    """An expected failure caused by input the user can fix; its message is the whole story."""


EXPECTED_ERRORS = (UserError, ValueError, FileNotFoundError, KeyError, NotADirectoryError)


def quiet_tensorflow() -> None:
    """Keeps TF/absl import-time noise off the terminal unless --verbose is on the command line.

    Must run before TensorFlow is imported, so binaries call it at module import time.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if "--verbose" in sys.argv or "--verbose=true" in sys.argv:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # TF 2.21 logs through C++ absl before TF_CPP_MIN_LOG_LEVEL is read ("All log messages
    # before absl::InitializeLog()...", cudart_stub), so import it once with fd 2 muted.
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _one_line(e: BaseException) -> str:
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    text = text.replace("\\n", " ").replace("\\'", "'")
    text = " ".join(text.split())
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":  # a repr'd KeyError message
        text = text[1:-1]
    return text or type(e).__name__


def run(main: Callable[[list[str]], int | None]) -> None:
    """absl `app.run` with expected errors reported as one line and a non-zero exit."""
    from absl import app, flags, logging

    started = False

    def wrapped(argv: list[str]) -> int:
        nonlocal started
        started = True
        verbose = flags.FLAGS["verbose"].value if "verbose" in flags.FLAGS else False
        if not verbose:
            logging.set_verbosity(logging.WARNING)
            _silence_tf_python_logs()
        try:
            return int(main(argv) or 0)
        except EXPECTED_ERRORS as e:
            if verbose:
                raise
            print(f"error: {_one_line(e)}", file=sys.stderr)
            return 2

    try:
        app.run(lambda argv: sys.exit(wrapped(argv)))
    except (flags.Error, AttributeError, KeyError, ValueError) as e:
        if started:  # raised from main under --verbose: keep the traceback
            raise
        # Flag parsing failed, e.g. a misspelled --config.key under lock_config=True.
        print(f"error: bad flag: {_one_line(e)}", file=sys.stderr)
        sys.exit(2)


def _silence_tf_python_logs() -> None:
    import logging as pylogging

    for name in ("tensorflow", "absl", "h5py", "matplotlib"):
        pylogging.getLogger(name).setLevel(pylogging.ERROR)


def define_verbose_flag() -> None:
    """Every binary has --verbose; defined here so the help text is the same everywhere."""
    from absl import flags

    if "verbose" not in flags.FLAGS:
        flags.DEFINE_bool("verbose", False, "Show TensorFlow logs and full tracebacks.")


def apply_flags(config, shorthands) -> None:
    """Copies each given shorthand flag into its dotted config key (`(flag, "data.path")`), so a
    binary's plain flags and `--config.key` overrides share one home for defaults."""
    for flag, key in shorthands:
        if flag.value is None:
            continue
        *sections, name = key.split(".")
        node = config
        for section in sections:
            node = node[section]
        node[name] = flag.value


def report(numbers: dict, output_json: str | None) -> None:
    """A benchmark's numbers on stdout, and as JSON in `output_json` when given."""
    import json

    text = json.dumps(numbers, indent=1)
    print(text)
    if output_json:
        Path(output_json).write_text(text + "\n")
