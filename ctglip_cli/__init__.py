"""Thin typer layer over ``stages``: argument parsing, rich progress, exit codes."""
