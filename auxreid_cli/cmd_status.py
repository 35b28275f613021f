"""`auxreid status`: one table per round of a run's artifacts, with the stale ones flagged."""

from __future__ import annotations

import os
from itertools import groupby
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from auxreid_cli.common import console, errors_to_exit

#: (header, justify, minimum width) of the status tables' columns; the widths line the tables up (stale: the
#: longest entry).
COLUMNS = (("artifact", "left", 11), ("exists", "left", 6), ("round", "right", 5), ("schema", "left", 11),
           ("created (UTC)", "left", 19), ("stale", "left", 5))


def _where(path: Path, run) -> str:
    """A path relative to the run folder when it lies inside it."""
    relative = Path(os.path.relpath(path, run.path))
    return str(path) if relative.parts and relative.parts[0] == ".." else relative.as_posix()


def _stale_cell(row) -> str:
    if row.stale:
        return "[bold red]" + ", ".join(f"{s.name} {'changed' if s.current_sha is not None else 'gone'}"
                                        for s in row.stale) + "[/]"
    if not row.exists:
        return ""
    return "no" if row.checked else "-"


def _cells(row) -> tuple[str, ...]:
    schema = f"[red]{row.schema or '?'}: {row.problem}[/]" if row.problem else row.schema
    return (Path(row.name).name, "yes" if row.exists else "[dim]no[/]", "" if row.round is None else str(row.round),
            schema, row.created.replace("T", " ").removesuffix("+00:00"), _stale_cell(row))


def _status(run: Annotated[str, typer.Argument(help="Run name or path.")]) -> None:
    """List every artifact of a run, one table per round: exists, round, schema, created, stale.

    Stale: a parent the file was made from (by SHA-256) has changed or gone since; re-make it.

    Example: auxreid status demo
    """
    from stages.rundir import RunDir
    from stages.status import run_status

    run_dir = RunDir.resolve(run)
    rows = run_status(run_dir)
    console.print(f"[bold]run {run_dir.name}[/] ({run_dir.path})", highlight=False, soft_wrap=True)
    longest = max(len(Text.from_markup(_stale_cell(row))) for row in rows)
    room = console.width - sum(width for _, _, width in COLUMNS[:-1]) - 3 * len(COLUMNS) - 1  # padding, borders
    stale_width = max(COLUMNS[-1][2], min(longest, room))
    for group, members in groupby(rows, key=lambda row: row.group):
        table = Table(title=group, title_justify="left")
        for header, justify, width in COLUMNS:
            table.add_column(header, justify=justify, no_wrap=header != "stale",
                             min_width=stale_width if header == "stale" else width)
        for row in members:
            table.add_row(*_cells(row))
        console.print(table)
    stale = [row for row in rows if row.stale]
    existing = sum(row.exists for row in rows)
    if not stale:
        console.print(f"{existing} artifacts, none stale (-: no parent recorded)", highlight=False)
        return
    console.print(f"[bold red]{len(stale)} stale[/] of {existing} artifacts; re-make them (then what was made from them):",
                  highlight=False)
    for row in stale:
        changes = "; ".join(f"{s.name} {_where(s.path, run_dir)} {'changed' if s.current_sha is not None else 'is gone'}"
                            for s in row.stale)
        console.print(f"  {row.name} ({changes}): {row.rerun}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("status")(errors_to_exit(_status))
