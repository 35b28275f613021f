"""`auxreid status`: one table per round of a run's artifacts, with the stale ones flagged."""

from __future__ import annotations

import os
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from auxreid_cli.common import console, errors_to_exit

if TYPE_CHECKING:
    from stages.rundir import RunDir
    from stages.status import StatusRow

#: (header, justify, minimum width, wraps) of the status tables' columns. Every table gets the same widths, so the
#: tables line up; a long text (a problem, many changed parents) wraps inside its own wrapping column, and the
#: columns that do not wrap keep their width, so no row loses a cell.
COLUMNS = (("artifact", "left", 11, False), ("exists", "left", 6, False), ("round", "right", 5, False),
           ("schema", "left", 11, True), ("created (UTC)", "left", 19, False), ("stale", "left", 5, True))


def _where(path: Path, run) -> str:
    """A path relative to the run folder when it lies inside it."""
    relative = Path(os.path.relpath(path, run.path))
    return str(path) if relative.parts and relative.parts[0] == ".." else relative.as_posix()


def _settings_text(row) -> str:
    # deferred: readers imports h5py and numpy, which `auxreid --help` does not need
    from stages.artifacts.readers import describe_settings

    return describe_settings(row.settings)


def _needs_remaking(row) -> bool:
    """Stale parents, a problem, or (for the run's own files, not a variant's) other settings than config.yaml."""
    return bool(row.stale or row.problem or (row.settings and row.variant is None))


def _stale_cell(row) -> str:
    variant = f"variant: {_settings_text(row) or 'other inputs'}" if row.variant is not None else ""
    if row.stale or (row.settings and row.variant is None):
        parts = [f"{s.name} {'changed' if s.current_sha is not None else 'gone'}" for s in row.stale]
        parts += [_settings_text(row)] if row.settings and row.variant is None else []
        return "[bold red]" + escape(", ".join(parts)) + "[/]" + (f" ({escape(variant)})" if variant else "")
    if variant:
        return escape(variant)
    if not row.exists:
        return ""
    return "no" if row.checked else "-"


def _cells(row) -> tuple[str, ...]:
    schema = f"[red]{escape(row.schema or '?')}: {escape(row.problem)}[/]" if row.problem else row.schema
    return (Path(row.name).name, "yes" if row.exists else "[dim]no[/]", "" if row.round is None else str(row.round),
            schema, row.created.replace("T", " ").removesuffix("+00:00"), _stale_cell(row))


def _status(run: Annotated[str, typer.Argument(help="Run name or path.")]) -> None:
    """List every artifact of a run, one table per round: exists, round, schema, created, stale.

    Stale: a parent the file was made from (by SHA-256) has changed or gone since, or the file was made with
    other settings than config.yaml holds now; re-make it.

    Example: auxreid status demo
    """
    from stages.rundir import RunDir
    from stages.status import run_status

    run_dir = RunDir.resolve(run)
    _print_status(run_dir, run_status(run_dir))


def _column_widths(rows: list[StatusRow], total: int) -> list[int]:
    """Each column's width for a console `total` wide: the widest cell, the wrapping columns capped at one width so
    the rest fits (the widest shrinks first), none below its minimum."""
    cells = [[Text.from_markup(cell).cell_len for cell in _cells(row)] for row in rows]
    widths = [max([minimum, len(header), *(row[i] for row in cells)])
              for i, (header, _, minimum, _) in enumerate(COLUMNS)]
    room = total - 3 * len(COLUMNS) - 1  # padding and borders
    wrapping = [i for i, column in enumerate(COLUMNS) if column[3]]
    cap = max(widths[i] for i in wrapping)

    def capped(cap: int) -> list[int]:
        return [max(COLUMNS[i][2], min(width, cap)) if i in wrapping else width for i, width in enumerate(widths)]

    while cap > 0 and sum(capped(cap)) > room:
        cap -= 1
    return capped(cap)


def _print_status(run_dir: RunDir, rows: list[StatusRow]) -> None:
    """One table per round folder, then each stale, unreadable or misplaced artifact with the command that re-makes
    it."""
    console.print(f"[bold]run {escape(run_dir.name)}[/] ({escape(str(run_dir.path))})", highlight=False, soft_wrap=True)
    widths = _column_widths(rows, console.width)
    for group, members in groupby(rows, key=lambda row: row.group):
        table = Table(title=group, title_justify="left")
        for (header, justify, _, wraps), width in zip(COLUMNS, widths):
            table.add_column(header, justify=justify, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis",
                             width=width)
        for row in members:
            table.add_row(*_cells(row))
        console.print(table)
    remake = [row for row in rows if _needs_remaking(row)]
    existing = sum(row.exists for row in rows)
    variants = sorted({Path(row.name).parent.as_posix() for row in rows if row.variant is not None})
    if variants:
        console.print(f"{len(variants)} variant{'s' if len(variants) > 1 else ''} beside the run's own files (made with "
                      "--set or other inputs; not part of the loop): "
                      + ", ".join(variants),
                      highlight=False, soft_wrap=True)
    if not remake:
        console.print(f"{existing} artifacts, none stale (-: no parent recorded)", highlight=False)
        return
    problems = sum(bool(row.problem) for row in remake)
    counts = [f"{len(remake) - problems} stale" if len(remake) > problems else "",
              f"{problems} unreadable or misplaced" if problems else ""]
    console.print(f"[bold red]{' and '.join(filter(None, counts))}[/] of {existing} artifacts; re-make them (then what "
                  "was made from them):", highlight=False)
    for row in remake:
        reasons = [row.problem] if row.problem else []
        reasons += [f"{s.name} {_where(s.path, run_dir)} {'changed' if s.current_sha is not None else 'is gone'}"
                    for s in row.stale]
        reasons += [_settings_text(row)] if row.settings and row.variant is None else []
        console.print(f"  {row.name} ({escape('; '.join(reasons))}): {row.rerun}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("status")(errors_to_exit(_status))
