"""RUN/log.txt: every command run against a run, with its command line, duration and result.

A run's history otherwise lives only in terminal scroll-back or a scheduler's log files. Each command
given a RUN appends a `start` line when the run folder already exists (so a command killed from outside
still leaves a trace) and an `exit` line when it ends: its code, seconds and, on failure, the one-line
error. Only the main process of a distributed (torchrun) command writes.
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import typer

from stages.errors import AuxReidError

LOG_NAME = "log.txt"


def _command_line() -> str:
    return shlex.join(["auxreid", *sys.argv[1:]])


def _log_path(run: str | None) -> Path | None:
    """RUN/log.txt when the command names an existing run (and this is the main process), else None."""
    if run is None or os.environ.get("RANK", "0") != "0":
        return None
    from stages.rundir import RunDir

    try:
        folder = RunDir.resolve(run).path
    except AuxReidError:
        return None
    return folder / LOG_NAME if folder.is_dir() else None


def _append(path: Path | None, text: str) -> None:
    if path is None:
        return
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp}  {text}\n")
    except OSError:
        pass  # the log is a record, never a reason for a command to fail


def _outcome(exc: BaseException) -> tuple[int, str]:
    """Exit code and the one-line reason of a command that raised `exc` (through the error boundary)."""
    code = exc.exit_code if isinstance(exc, typer.Exit) else exc.code if isinstance(exc, SystemExit) else 1
    code = code if isinstance(code, int) else 1
    cause = exc if not isinstance(exc, (typer.Exit, SystemExit)) else exc.__context__
    if isinstance(cause, AuxReidError):
        return code, f"error: {cause}"
    if isinstance(cause, KeyboardInterrupt):
        return code, "interrupted"
    if cause is not None and not isinstance(cause, (typer.Exit, SystemExit)):
        return code, f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}".rstrip(": ")
    return code, ""


def logged(func: Callable) -> Callable:
    """Wrap a command (outside its error boundary) so that a command given RUN appends to RUN/log.txt."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        run = kwargs.get("run")
        command = _command_line()
        _append(_log_path(run), f"start   {command}")
        began = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            code, reason = _outcome(exc)
            line = f"exit {code}  {time.perf_counter() - began:.1f} s  {command}" + (f"  ({reason})" if reason else "")
            _append(_log_path(run), line)
            raise
        _append(_log_path(run), f"exit 0  {time.perf_counter() - began:.1f} s  {command}")
        return result

    return wrapper
