"""Shared CLI plumbing: rich progress bar, final summary table, exit codes 0/1/2/3.

Exit codes: 0 all items ok, 1 some items failed (listed), 2 the user must fix something
(a :class:`~stages.common.errors.CtglipError`: bad option or input, missing upstream
output or weights, a foreign or locked output folder, a full disk), 3 a bug in ctglip
(any other exception; its traceback is shown).
"""
from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from stages.common.errors import CtglipError
from stages.common.manifest import FAILED, OK, StageResult

console = Console(stderr=True)
HU_CHECK_HELP = ("What to do with a CT whose values are not Hounsfield units (stored values, rescaled twice, "
                 "not a CT): error (refuse the scan), warn, off.")
T = TypeVar("T")


class RichProgress:
    """Rich implementation of :class:`stages.common.progress.ProgressReporter`."""

    def __init__(self, progress: Progress):
        self._progress = progress
        self._task: Any = None

    def start(self, total: int, description: str) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total, status="")

    def advance(self, step: int = 1, **fields: Any) -> None:
        status = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        self._progress.update(self._task, advance=step, status=status)


@contextmanager
def rich_progress() -> Iterator[RichProgress]:
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
        console=console, transient=False,
    )
    with progress:
        yield RichProgress(progress)


EXIT_FAILED_ITEMS, EXIT_USER, EXIT_BUG = 1, 2, 3


def calm_openmp() -> None:
    """Let idle OpenMP threads sleep (they spin by default: ~5x slower training on a shared CPU).

    Called by the commands that run torch on the CPU, before torch is first imported; it
    affects that command's process and its workers only, never an importer of ctglip.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def exit_for(error: Exception) -> typer.Exit:
    """Print ``error`` the way its kind deserves and return the exit to raise."""
    if isinstance(error, CtglipError):
        console.print(f"[bold red]error:[/] {error}", highlight=False)
        return typer.Exit(EXIT_USER)
    traceback.print_exception(error)
    console.print(f"[bold red]bug:[/] ctglip failed unexpectedly ({type(error).__name__}); please report it "
                  "with the traceback above", highlight=False)
    return typer.Exit(EXIT_BUG)


def fail_fast(func: Callable[[], T]) -> T:
    """Run ``func``; a :class:`CtglipError` prints one red line and exits 2, anything else is a bug (3)."""
    try:
        return func()
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except Exception as error:  # noqa: BLE001 - sorted into user error or bug by exit_for
        raise exit_for(error) from error


def finish(result: StageResult) -> None:
    """Print the summary table and failures, then exit 0 or 1."""
    counts = {name: n for name, n in result.counts().items() if n or name in (OK, FAILED)}
    table = Table(title=f"ctglip {result.stage}: {result.output_dir}")
    for name in counts:
        table.add_column(name, justify="right")
    table.add_row(*(str(n) for n in counts.values()))
    console.print(table)
    if result.failed:
        failures = Table(title="failed items", show_lines=False)
        failures.add_column("id")
        failures.add_column("reason", overflow="fold")
        for item in result.failed:
            failures.add_row(item.item_id, item.error)
        console.print(failures)
    raise typer.Exit(result.exit_code)
