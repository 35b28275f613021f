"""Command-line interface of auxreid (typer application)."""
