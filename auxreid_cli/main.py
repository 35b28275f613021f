"""The `auxreid` command: one typer application, subcommands registered from small modules."""

from __future__ import annotations

from typing import Annotated

import typer

from auxreid_cli import (
    cmd_browse,
    cmd_cluster,
    cmd_core,
    cmd_data,
    cmd_evaluate,
    cmd_export,
    cmd_extract,
    cmd_mine,
    cmd_model,
    cmd_status,
    cmd_synth,
    cmd_train,
)
from auxreid_cli.runlog import logged


def _flags_as_flags() -> None:
    """Typer's help shows a type after every option, `--force <bool>` included, which reads as if the flag took
    a value; a flag (and --help) is shown bare. Older typers have no such column and are left alone."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is not None:
        TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else shown(self, ctx)


_flags_as_flags()

app = typer.Typer(
    name="auxreid",
    help="Unsupervised video person re-identification with auxiliary information mined from the datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"auxreid {version('auxreid')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Options that come before the command."""


for module in (cmd_synth, cmd_data, cmd_core, cmd_mine, cmd_extract, cmd_cluster, cmd_train, cmd_evaluate, cmd_export,
               cmd_status, cmd_model, cmd_browse):
    module.register(app)

# Every command given a RUN appends to RUN/log.txt (outside the error boundary, so it sees the exit code).
for info in [*app.registered_commands, *(c for g in app.registered_groups for c in g.typer_instance.registered_commands)]:
    info.callback = logged(info.callback)

if __name__ == "__main__":
    app()
