"""What every binary in tools/ shares: quiet TensorFlow start-up and one-line failures.

Binaries stay thin: they define flags, call one library function inside `run`, and exit with its
status. Library code raises `errors.UserError` (or ValueError/FileNotFoundError for bad input); `run`
turns those into a single `error: ...` line on stderr and exit status 2, so users see what to fix
instead of a converter traceback. `--verbose` keeps TensorFlow's logs and full tracebacks.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.abc
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from edgequant import workspace
from edgequant.errors import UserError  # also re-exported: binaries raise cli.UserError


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived. A KeyboardInterrupt, so `except Exception` never swallows it.

    Code that knows what an interruption leaves behind (rundir.staged) sets `kept` to one clause
    saying so; `run` prints it.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# KeyError is deliberately absent: a missing dict key is a programming bug and must keep its
# traceback, not pass for a friendly one-liner. Raise ValueError/UserError for bad input.
EXPECTED_ERRORS = (UserError, ValueError, FileNotFoundError, NotADirectoryError)

# OSErrors the user's environment causes (a read-only or full disk, a path that is a file):
# one line naming the file. Anything else (EIO, EBADF, ...) keeps its traceback.
USER_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EEXIST,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENOENT,
    errno.ENAMETOOLONG,
    errno.EFBIG,
}

KEPT_BY_DEFAULT = (
    "every file written so far is complete (writes are atomic); nothing partial was left"
)


def project_path(relative: str) -> str:
    """`relative` (e.g. "configs/base.py") inside the project, whatever the current directory.

    Binaries use it for default flag values, so `python /path/to/tools/quantize.py` works from
    any folder; paths the user passes stay relative to where the user is.
    """
    return str(workspace.path(relative))


_stderr_fd = 2  # the terminal's stderr, also while quiet_tensorflow mutes fd 2


def _exit_while_starting(signum: int, frame) -> None:
    name = signal.Signals(signum).name
    sys.stderr.flush()
    os.write(
        _stderr_fd, f"error: interrupted by {name} while starting; nothing was written\n".encode()
    )
    raise SystemExit(128 + signum)


def quiet_tensorflow() -> None:
    """Keeps TF/absl import-time noise off the terminal unless --verbose is on the command line.

    Must run before TensorFlow is imported, so binaries call it at module import time. It does
    not import TensorFlow itself: that costs about 6 s of CPU, which a binary refusing a bad
    flag, or benchmarking a .tflite with LiteRT, should never pay.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    # Until `run` installs its handlers: a signal while TensorFlow loads exits quietly.
    signal.signal(signal.SIGINT, _exit_while_starting)
    signal.signal(signal.SIGTERM, _exit_while_starting)
    if "--verbose" in sys.argv or "--verbose=true" in sys.argv:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if "tensorflow" not in sys.modules and not any(
        isinstance(f, _MutedTensorFlowImport) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _MutedTensorFlowImport())


class _MutedTensorFlowImport(importlib.abc.MetaPathFinder):
    """Mutes fd 2 while the `tensorflow` package first executes, whoever imports it and when.

    TF 2.21 logs through C++ absl before TF_CPP_MIN_LOG_LEVEL is read ("All log messages before
    absl::InitializeLog()...", cudart_stub), so the environment alone cannot silence it.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module):
                with _stderr_muted():
                    load(module)

            spec.loader.exec_module = exec_module
        return spec


@contextlib.contextmanager
def _stderr_muted():
    global _stderr_fd
    saved = os.dup(2)
    _stderr_fd = saved
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        _stderr_fd = 2
        os.close(saved)


def _one_line(e: BaseException) -> str:
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    text = text.replace("\\n", " ").replace("\\'", "'")
    text = " ".join(text.split())
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":  # a repr'd KeyError message
        text = text[1:-1]
    return text or type(e).__name__


def _is_user_oserror(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in USER_ERRNOS


def _oserror_line(e: OSError) -> str:
    reason = e.strerror or type(e).__name__
    files = [f for f in (e.filename, e.filename2) if f]
    return f"{reason}: {' -> '.join(str(f) for f in files)}" if files else _one_line(e)


_pending_signal: int | None = None  # the first SIGINT/SIGTERM, once it arrived


def _unsafe_to_raise(frame) -> bool:
    """True inside a finalizer or an import: an exception raised there is swallowed ("Exception
    ignored in __del__") or turned into an ImportError that code may treat as "not installed"."""
    while frame is not None:
        if frame.f_code.co_name == "__del__" or frame.f_code.co_filename.startswith(
            "<frozen importlib"
        ):
            return True
        frame = frame.f_back
    return False


def _cut_short(unraisable) -> None:
    """sys.unraisablehook once an interrupt is on its way up: the work it stopped mid-write (a
    zip member of a .keras file, an h5py store) sits in reference cycles whose finalizers the
    garbage collector runs in any order, and ZipFile's then complains of "an open writing handle"
    as an "Exception ignored" traceback. The interrupt's one line already says what was kept:
    a finalizer's complaint about the work it cut short is not news, and not the user's."""


def _raise_interrupted(signum: int, frame) -> None:
    global _pending_signal
    _pending_signal = signum
    sys.unraisablehook = _cut_short
    if _unsafe_to_raise(frame):
        # Deliver it again in a moment, when the finalizer or import is over.
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
    signal.signal(signal.SIGINT, _stop_now)
    signal.signal(signal.SIGTERM, _stop_now)
    raise Interrupted(signum)


def _stop_now(signum: int, frame) -> None:
    """A second signal while the first is being cleaned up: one line, then the signal's default
    action; anything left is finished or undone at the next start (rundir.recover).

    A Python handler, not SIG_DFL: a second signal already pending when the first handler runs
    would otherwise surface as CPython's "Signal N ignored due to race condition" traceback.
    """
    name = signal.Signals(signum).name
    sys.stderr.flush()
    os.write(
        _stderr_fd,
        f"error: interrupted again by {name} while stopping; stopped at once (the next run "
        "into the same folder recovers what was left)\n".encode(),
    )
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def raise_if_interrupted() -> None:
    """Raises `Interrupted` again for a signal a library swallowed on its way up (some catch
    KeyboardInterrupt and carry on). Called at the last point before a run replaces what the
    user has, so a Ctrl-C is never answered by replacing the previous bundle."""
    if _pending_signal is not None:
        raise Interrupted(_pending_signal)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise `Interrupted`, so cleanup (finally, context managers) runs."""
    signal.signal(signal.SIGINT, _raise_interrupted)
    signal.signal(signal.SIGTERM, _raise_interrupted)


# What absl and ml_collections raise for a bad flag, config file or --config.key.
_FLAG_ERRORS = (SyntaxError, ImportError, AttributeError, KeyError, ValueError, OSError)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing with its failures as one `error:` line and exit 2 (not FATAL, exit 1).

    Covers a wrong type, a bad enum value, a missing required flag, an unknown --config.key and a
    config file that is missing or does not import (ml_collections loads it while parsing).
    """
    from absl import flags

    try:
        rest = flags.FLAGS(argv)
        for name in flags.FLAGS:
            # ml_collections defers a missing config file's error to the first access.
            error = getattr(flags.FLAGS[name].value, "_error", None)
            if isinstance(error, OSError):
                path = flags.FLAGS[name].serialize().split("=", 1)[-1]
                raise FileNotFoundError(f"--{name}: config file not found: {path}")
        return rest
    except (flags.Error, *_FLAG_ERRORS) as e:
        _bad_flag(e, argv)


def _bad_flag(e: BaseException, argv: list[str]) -> NoReturn:
    """One `error: bad flag:` line for a flag failure, and exit 2."""
    lines = [ln.strip() for ln in str(e.args[0] if e.args else e).splitlines() if ln.strip()]
    if isinstance(e, SyntaxError) and e.filename:
        message = f"config file {e.filename} line {e.lineno}: {e.msg}"
    elif len(lines) > 1:  # a config file that raised: keep the flag and the final reason
        message = f"{lines[0].rstrip(':')} {lines[-1]}"
    else:
        message = _one_line(e)
    if isinstance(e, KeyError | AttributeError):
        from edgequant import config_check

        message = config_check.moved_key_hint(argv, message) or message
    print(f"error: bad flag: {message}", file=sys.stderr)
    sys.exit(2)


def define_config_file(default: str | None, help_text: str):
    """`--config` (ml_collections, locked). With a default file, ml_collections applies the
    `--config.KEY=V` overrides while the flag is DEFINED, at import: a misspelled key would be
    a traceback there, so the same one-line error as at parse time is given instead."""
    from ml_collections import config_flags

    try:
        return config_flags.DEFINE_config_file("config", default, help_text, lock_config=True)
    except _FLAG_ERRORS as e:
        _bad_flag(e, sys.argv)


def run(main: Callable[[list[str]], int | None]) -> None:
    """absl `app.run` with expected errors reported as one line and a non-zero exit.

    Exit status: what `main` returns; 2 for bad input or bad flags; 128 + signal number
    (130 SIGINT, 143 SIGTERM) when interrupted, after one line saying what was kept.
    """
    from absl import app, flags, logging

    def wrapped(argv: list[str]) -> int:
        verbose = flags.FLAGS["verbose"].value if "verbose" in flags.FLAGS else False
        if not verbose:
            logging.set_verbosity(logging.WARNING)
            _silence_tf_python_logs()
        try:
            status = int(main(argv) or 0)
            if _pending_signal is not None:  # swallowed by a library on its way up
                name = signal.Signals(_pending_signal).name
                print(
                    f"error: interrupted by {name} too late to stop; the work completed",
                    file=sys.stderr,
                )
                return 128 + _pending_signal
            return status
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", signal.SIGINT)
            kept = getattr(e, "kept", KEPT_BY_DEFAULT)
            print(f"error: interrupted by {signal.Signals(signum).name}: {kept}", file=sys.stderr)
            return 128 + signum
        except Exception as e:
            if _pending_signal is not None:  # the interrupt surfaced as another error
                name = signal.Signals(_pending_signal).name
                print(f"error: interrupted by {name}: {KEPT_BY_DEFAULT}", file=sys.stderr)
                return 128 + _pending_signal
            if verbose or not (isinstance(e, EXPECTED_ERRORS) or _is_user_oserror(e)):
                raise
            line = _oserror_line(e) if _is_user_oserror(e) else _one_line(e)
            print(f"error: {line}", file=sys.stderr)
            return 2

    install_signal_handlers()
    try:
        app.run(lambda argv: sys.exit(wrapped(argv)), flags_parser=_parse_flags)
    except KeyboardInterrupt as e:  # arrived before main started (e.g. while parsing flags)
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"error: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
        sys.exit(128 + signum)


def _silence_tf_python_logs() -> None:
    import logging as pylogging

    for name in ("tensorflow", "absl", "h5py", "matplotlib"):
        pylogging.getLogger(name).setLevel(pylogging.ERROR)


def define_verbose_flag() -> None:
    """Every binary has --verbose; defined here so the help text is the same everywhere."""
    from absl import flags

    if "verbose" not in flags.FLAGS:
        flags.DEFINE_bool("verbose", False, "Show TensorFlow logs and full tracebacks.")


def define_trust_flag():
    """--trust_model_code, the one switch that lets a model file run the code it carries (a
    Keras Lambda layer); off, such a file is refused (edgequant/modelfile.py)."""
    from absl import flags

    return flags.DEFINE_bool(
        "trust_model_code",
        None,
        "Let the model file run the Python code it carries (Keras Lambda layers). Off by "
        "default: such a model is refused. Only for a file you trust.",
    )


def apply_flags(config, shorthands) -> None:
    """Copies each given shorthand flag into its dotted config key (`(flag, "data.path")`), so a
    binary's plain flags and `--config.key` overrides share one home for defaults."""
    from edgequant.config_check import set_key

    for flag, key in shorthands:
        if flag.value is not None:
            set_key(config, key, flag.value)


def report(numbers: dict, output_json: str | None) -> None:
    """A benchmark's numbers on stdout, and as JSON in `output_json` when given."""
    import json

    from edgequant import atomic

    print(json.dumps(numbers, indent=1))
    if output_json:
        Path(output_json).parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(output_json, numbers)
