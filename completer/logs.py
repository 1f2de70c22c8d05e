"""Where log output goes: completer's own messages on stderr, the engine's in a log file.

vLLM logs to stdout at INFO by default, and its engine processes (children of this one) write
warnings, progress bars and native libraries' messages straight to the stderr they inherit: a
few hundred lines at each engine start. Quiet (the default), all of that goes to a log file:

- vLLM's logging, in this process and in the engine processes, through a dictConfig file that
  vLLM itself applies (``VLLM_LOGGING_CONFIG_PATH``);
- whatever any process writes to file descriptor 2: the descriptor is pointed at the log file
  before an engine starts, and this process's ``sys.stderr`` moves to a copy of the original, so
  completer's own messages, progress bars and click's errors still reach the terminal;
- other libraries' log records and the Python warnings of this process.

On stderr stay completer's own records: INFO and up for ``serve`` (an editor keeps a server's
stderr as its log), WARNING and up for the other commands. ``--verbose`` leaves everything on
stderr, completer's records from DEBUG and vLLM's from INFO; ``serve --log-file`` sends everything
to that file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
KEEP_LOGS = 20  # default log files kept in the logs folder; older ones are removed
VLLM_CONFIG_SUFFIX = ".vllm-logging.json"
OWN_STDERR = "completer-stderr"  # the stderr handler that shows completer's own records only

_log_file: Path | None = None
_terminal_fd: int | None = None


def logs_dir() -> Path:
    """The default log folder: ``<completer cache>/logs`` (``COMPLETER_CACHE`` or ``~/.cache/completer``)."""
    from completer.engine.models import cache_dir

    return cache_dir() / "logs"


def default_log_file(command: str | None, folder: Path, pid: int | None = None) -> Path:
    """``<folder>/<command>-<YYYYmmdd-HHMMSS>-<pid>.log``: one file per run, never shared by two processes."""
    return folder / f"{command or 'completer'}-{time.strftime('%Y%m%d-%H%M%S')}-{pid or os.getpid()}.log"


def prune(folder: Path, keep: int = KEEP_LOGS) -> list[Path]:
    """Remove all but the ``keep`` newest ``*.log`` files in ``folder`` (and their vLLM configs).

    Returns the log files removed; a file another process removed first is skipped."""
    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    removed = []
    for path in sorted(folder.glob("*.log"), key=mtime, reverse=True)[keep:]:
        for victim in (path, path.with_suffix(VLLM_CONFIG_SUFFIX)):
            try:
                victim.unlink()
            except OSError:
                continue
        removed.append(path)
    return removed


def vllm_logging_config(log_file: Path, level: str = "INFO") -> dict:
    """A ``logging.config.dictConfig`` for vLLM's ``vllm`` logger: records at ``level`` and up, appended to ``log_file``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file), "mode": "a",
                              "formatter": "plain", "level": level}},
        "loggers": {"vllm": {"handlers": ["file"], "level": level, "propagate": False}},
    }


class OwnRecords(logging.Filter):
    """Passes only completer's own records (its modules' loggers and the root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name in ("root", "completer") or record.name.startswith("completer.")


def log_file() -> Path | None:
    """The file that receives the engine's output in this process; None while it goes to stderr."""
    return _log_file


def configure(verbose: bool, command: str | None = None, log_path: str | Path | None = None) -> Path | None:
    """Set up logging for one run of the command line; call it before any engine is built.

    ``verbose`` without ``log_path``: everything on stderr. Otherwise the engine's output and every
    record go to ``log_path`` (default: a new file in ``logs_dir()``, the 20 newest kept) and stderr
    keeps completer's own records, unless ``log_path`` was given (then nothing goes to stderr).
    Calling it again (``serve --log-file``) moves the output to the new file.
    Returns the log file, or None when everything stays on stderr.
    """
    global _log_file
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    # vLLM's records never go to stdout, where `complete` prints its answer and `serve` speaks LSP
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if not log_path and (verbose or not _writes_to_fd2(sys.stderr)):
        # verbose, or run inside a program that captured stderr (a test runner): all of it there,
        # and the process's descriptors and environment left alone
        _add_stderr_handler(root, logging.DEBUG if verbose else logging.INFO, own_only=False)
        root.setLevel(logging.DEBUG if verbose else logging.INFO)
        if not verbose:
            logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message at INFO
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
        _log_file = None
        return None

    if log_path:
        path = Path(log_path)
    else:
        folder = logs_dir()
        folder.mkdir(parents=True, exist_ok=True)
        prune(folder, KEEP_LOGS - 1)
        path = default_log_file(command, folder)
    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(file_handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not log_path:
        _add_stderr_handler(root, logging.INFO if command == "serve" else logging.WARNING, own_only=True)
    if not verbose:
        logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message at INFO
    logging.captureWarnings(True)  # this process's Python warnings become records: into the file

    config = path.with_suffix(VLLM_CONFIG_SUFFIX)
    config.write_text(json.dumps(vllm_logging_config(path.resolve(), "DEBUG" if verbose else "INFO")))
    os.environ["VLLM_CONFIGURE_LOGGING"] = "1"  # vLLM refuses a config file with it off
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(config.resolve())
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # transformers' own bars while a GGUF file is converted: completer shows its own for that step
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if command == "models":  # transformers' GGUF reader draws a plain tqdm bar of its own as well
        os.environ.setdefault("TQDM_DISABLE", "1")
    _redirect_stderr_fd(path)
    _log_file = path
    return path


def _add_stderr_handler(root: logging.Logger, level: int, own_only: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    if own_only:
        handler.addFilter(OwnRecords())
        handler.set_name(OWN_STDERR)
    root.addHandler(handler)


def set_own_level(level: str | None) -> None:
    """The editor's ``log_level``: completer's own records from ``level`` up, in the log file and on
    stderr (None: what the command line chose)."""
    logging.getLogger("completer").setLevel(level.upper() if level else logging.NOTSET)
    for handler in logging.getLogger().handlers:
        if handler.get_name() == OWN_STDERR:
            if not hasattr(handler, "default_level"):
                handler.default_level = handler.level
            handler.setLevel(level.upper() if level else handler.default_level)


def _writes_to_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # replaced by a test runner or an editor's capture
        return False


def _redirect_stderr_fd(path: Path) -> None:
    """Point descriptor 2, which the engine processes inherit, at ``path``; ``sys.stderr`` keeps the terminal.

    Only where ``sys.stderr`` is descriptor 2 itself (a test runner that replaced it keeps its own)."""
    global _terminal_fd
    if _terminal_fd is None:
        if not _writes_to_fd2(sys.stderr):
            return
        sys.stderr.flush()
        _terminal_fd = os.dup(2)
        old = sys.stderr
        sys.stderr = os.fdopen(_terminal_fd, "w", buffering=1, encoding=old.encoding or "utf-8",
                               errors="backslashreplace", closefd=False)
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler and handler.stream is old:
                handler.setStream(sys.stderr)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
