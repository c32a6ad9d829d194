"""Shared CLI plumbing: rich progress bar, final summary table, exit codes 0/1/2.

Exit codes: 0 all items ok, 1 some items failed (listed), 2 the run could not start
(bad arguments, missing upstream manifest, missing weights).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from stages.common.ids import InvalidScanId
from stages.common.manifest import ManifestError, StageResult
from stages.common.nifti import InputError

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


def fail_fast(func: Callable[[], T]) -> T:
    """Run ``func``; a setup error (not a per-item one) prints one clear line and exits 2."""
    try:
        return func()
    except (ManifestError, InputError, InvalidScanId, FileNotFoundError, FileExistsError,
            KeyError, ValueError, RuntimeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        console.print(f"[bold red]error:[/] {message}")
        raise typer.Exit(2) from error


def finish(result: StageResult) -> None:
    """Print the summary table and failures, then exit 0 or 1."""
    counts = result.counts()
    table = Table(title=f"ctglip {result.stage}: {result.output_dir}")
    for name in ("ok", "skipped", "failed"):
        table.add_column(name, justify="right")
    table.add_row(*(str(counts.get(name, 0)) for name in ("ok", "skipped", "failed")))
    console.print(table)
    if result.failed:
        failures = Table(title="failed items", show_lines=False)
        failures.add_column("id")
        failures.add_column("reason", overflow="fold")
        for item in result.failed:
            failures.add_row(item.item_id, item.error)
        console.print(failures)
    raise typer.Exit(result.exit_code)
