"""The `auxreid` command: one typer application, subcommands registered from small modules."""

from __future__ import annotations

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

for module in (cmd_synth, cmd_data, cmd_core, cmd_mine, cmd_extract, cmd_cluster, cmd_train, cmd_evaluate, cmd_status,
               cmd_model):
    module.register(app)

if __name__ == "__main__":
    app()
