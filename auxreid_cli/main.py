"""The `auxreid` command: one typer application, subcommands registered from small modules."""

from __future__ import annotations

from typing import Annotated

import typer

from auxreid_cli import (
    cmd_cluster, cmd_core, cmd_data, cmd_evaluate, cmd_extract, cmd_mine, cmd_model, cmd_status, cmd_synth, cmd_train,
)

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
    """Unsupervised video person re-identification with auxiliary information mined from the datasets."""


for module in (cmd_synth, cmd_data, cmd_core, cmd_mine, cmd_extract, cmd_cluster, cmd_train, cmd_evaluate, cmd_status,
               cmd_model):
    module.register(app)

if __name__ == "__main__":
    app()
