"""Shared CLI plumbing: the rich console, --set/--config options, error boundary, progress."""

from __future__ import annotations

import functools
import sys
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stages.errors import AuxReidError

console = Console()
err_console = Console(stderr=True)

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a config value, e.g. --set cluster.eps=0.5 (repeatable)."),
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


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def errors_to_exit(func: Callable) -> Callable:
    """Turn the project's own error into a one-line message and exit 1; real bugs keep their traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except AuxReidError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted; finished artifacts are intact, unfinished ones were not written[/]")
            sys.exit(130)

    return wrapper


class RichProgress:
    """The stages' Progress protocol on a rich progress bar."""

    def __init__(self) -> None:
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rate]}"),
            console=err_console,
            transient=False,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "RichProgress":
        self._bar.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:
            self._bar.live.transient = True  # an error then stands alone, without half-drawn bars above it
        self._bar.stop()

    def start(self, task: str, total: int | None = None) -> None:
        self._tasks[task] = self._bar.add_task(task, total=total, rate="")

    def advance(self, task: str, amount: int = 1) -> None:
        if task in self._tasks:
            self._bar.advance(self._tasks[task], amount)

    def rate(self, task: str, text: str) -> None:
        if task in self._tasks:
            self._bar.update(self._tasks[task], rate=text)

    def done(self, task: str, message: str = "") -> None:
        if task in self._tasks:
            tid = self._tasks[task]
            total = self._bar.tasks[tid].total
            self._bar.update(tid, completed=total if total is not None else 1, total=total or 1, rate=message)

    def warn(self, message: str) -> None:
        self._bar.console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
