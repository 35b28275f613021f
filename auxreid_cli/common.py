"""Shared CLI plumbing: the rich console, --set/--config options, error boundary, progress."""

from __future__ import annotations

import functools
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from stages.errors import AuxReidError

#: Console width when output is not a terminal and COLUMNS is unset: a log file or pipe keeps whole table rows.
LOG_WIDTH = 250


def _console(stderr: bool = False) -> Console:
    """A rich console; on no terminal (a log, a pipe) and without COLUMNS it is wide, so tables are not cut at 80."""
    stream = sys.stderr if stderr else sys.stdout
    isatty = getattr(stream, "isatty", None)
    wide = not (isatty is not None and isatty()) and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, width=LOG_WIDTH if wide else None)


console = _console()
err_console = _console(stderr=True)

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="KEY=VALUE", help="Override a config value, e.g. --set cluster.eps=0.5 "
                 "(repeatable; `auxreid init --help` lists the keys with a fixed set of values)."),
]

ForceOption = Annotated[
    bool,
    typer.Option("--force", help="Replace an existing output of the same kind given with --out (a run's own files "
                 "are replaced in RUN mode without it); an input or a file of another kind is never replaced."),
]


def print_sections(sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
    """Print a stage's `summarize` output: one titled key/value table per section."""
    for title, rows in sections:
        table = Table(title=title, show_header=False)
        table.add_column("what", style="bold")
        table.add_column("value")
        for key, value in rows:
            table.add_row(str(key), str(value))
        console.print(table)


def announce_variant(io) -> None:
    """Say, once a stage has written, that its --set (or given files) made it a variant beside the run's files."""
    if io.variant is None:
        return
    folder = next(path.parent for path in io.outputs.values() if path.parent.name == io.variant)
    console.print(f"[yellow]variant[/] {io.variant} ({io.variant_note}): written into {folder}; the run's own files "
                  "stay as config.yaml makes them (to change the run itself, edit its config.yaml: `auxreid status` "
                  "then names what is stale and `make round` re-makes it)", highlight=False, soft_wrap=True)


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


class Terminated(BaseException):
    """SIGTERM as an exception, so it unwinds like Ctrl-C: temporaries removed, locks released."""


#: The process that installed `_raise_terminated`; its forked helpers (data loader workers) just end.
_command_pid: int | None = None


def _raise_terminated(signum, frame) -> None:
    if os.getpid() != _command_pid:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    raise Terminated()


def _stopped(how: str, code: int) -> None:
    """One line for a command stopped by a signal: what it was writing and that the previous files stand."""
    from stages.artifacts.lock import stopped_outputs

    writing = stopped_outputs()
    where = f" while writing {', '.join(map(str, writing))}" if writing else ""
    err_console.print(f"[yellow]{how}{where}; finished artifacts are intact, unfinished ones were not written[/]",
                      highlight=False, soft_wrap=True)
    sys.exit(code)


def errors_to_exit(func: Callable) -> Callable:
    """Turn the project's own error or a stop signal into one line and an exit code; real bugs keep their traceback.

    AuxReidError exits 1 (failed writes are AuxReidErrors naming the file, see `atomic_path`); Ctrl-C exits
    130 and SIGTERM 143, after the write in progress removed its temporary and the output locks were released.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        global _command_pid
        main_thread = threading.current_thread() is threading.main_thread()
        _command_pid = os.getpid()
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
        try:
            return func(*args, **kwargs)
        except AuxReidError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            _stopped("interrupted", 130)
        except Terminated:
            _stopped("terminated (SIGTERM)", 143)
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    return wrapper


#: Seconds between plain progress lines when stderr is not a terminal (a scheduler's log file, a pipe).
PROGRESS_EVERY_ENV = "AUXREID_PROGRESS_EVERY"
PROGRESS_EVERY_DEFAULT = 30.0


def progress_every() -> float:
    """$AUXREID_PROGRESS_EVERY seconds (default 30), checked."""
    raw = os.environ.get(PROGRESS_EVERY_ENV, "").strip()
    try:
        seconds = float(raw) if raw else PROGRESS_EVERY_DEFAULT
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or math.isinf(seconds):
        raise AuxReidError(f"{PROGRESS_EVERY_ENV}={raw} is not a number of seconds > 0; unset it (every "
                           f"{PROGRESS_EVERY_DEFAULT:g} s) or give e.g. {PROGRESS_EVERY_ENV}=60")
    return seconds


def clock(seconds: float) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class _Task:
    total: int | None
    began: float
    done: int = 0
    text: str = ""
    finished: bool = False

    def line(self, name: str, now: float) -> str:
        """name: done/total (percent), elapsed, rate (the stage's own rate text when it gives one) and ETA."""
        elapsed = now - self.began
        parts = [f"{self.done:,}/{self.total:,} ({100 * self.done / self.total:.0f}%)" if self.total else f"{self.done:,}",
                 f"{clock(elapsed)} elapsed"]
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            if not self.text:
                parts.append(f"{rate:,.3g}/s")
            if self.total:
                parts.append(f"ETA {clock(max(self.total - self.done, 0) / rate)}")
        return f"{name}: {', '.join(parts)}" + (f"; {self.text}" if self.text else "")


class RichProgress:
    """The stages' Progress protocol: rich bars with an ETA on a terminal, plain lines anywhere else.

    Without a terminal (a batch job's log, a pipe) a bar would print nothing until the stage ends, so each
    task gets a line when it starts, one every $AUXREID_PROGRESS_EVERY seconds (default 30) with done/total,
    rate and ETA, and one when it is done.
    """

    def __init__(self) -> None:
        self._plain = not err_console.is_terminal
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.Lock()
        if self._plain:
            self._every = progress_every()
            self._stop = threading.Event()
            self._ticker = threading.Thread(target=self._tick, name="auxreid-progress", daemon=True)
            return
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[rate]}"),
            console=err_console,
            transient=False,
        )
        self._ids: dict[str, int] = {}

    def __enter__(self) -> "RichProgress":
        if self._plain:
            self._ticker.start()
        else:
            self._bar.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if self._plain:
            self._stop.set()
            self._ticker.join()
            return
        if exc_type is not None:
            self._bar.live.transient = True  # an error then stands alone, without half-drawn bars above it
        self._bar.stop()

    def _say(self, text: str) -> None:
        with self._lock:
            err_console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _tick(self) -> None:
        while not self._stop.wait(self._every):
            now = time.perf_counter()
            for name, task in list(self._tasks.items()):
                if not task.finished:
                    self._say(task.line(name, now))

    def start(self, task: str, total: int | None = None) -> None:
        self._tasks[task] = _Task(total=total, began=time.perf_counter())
        if self._plain:
            self._say(f"{task}: started" + (f", {total:,} to do" if total else ""))
        else:
            self._ids[task] = self._bar.add_task(task, total=total, rate="")

    def advance(self, task: str, amount: int = 1) -> None:
        if task in self._tasks:
            self._tasks[task].done += amount
            if not self._plain:
                self._bar.advance(self._ids[task], amount)

    def rate(self, task: str, text: str) -> None:
        if task in self._tasks:
            self._tasks[task].text = text
            if not self._plain:
                self._bar.update(self._ids[task], rate=text)

    def done(self, task: str, message: str = "") -> None:
        if task not in self._tasks:
            return
        state = self._tasks[task]
        state.finished = True
        if self._plain:
            elapsed = time.perf_counter() - state.began
            self._say(f"{task}: done in {clock(elapsed)}" + (f"; {message}" if message else ""))
            return
        tid = self._ids[task]
        total = self._bar.tasks[tid].total
        self._bar.update(tid, completed=total if total is not None else 1, total=total or 1, rate=message)

    def warn(self, message: str) -> None:
        with self._lock:
            err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
