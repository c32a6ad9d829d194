"""The ``ctglip`` console script: one subcommand per stage.

Only typer and rich load here: each command imports its stage (torch, MONAI, spaCy)
when it runs, so ``ctglip --help`` answers at once (``benchmarks/bench_startup.py``).
"""
from __future__ import annotations

from typing import Any

import typer

from ctglip_cli import cache, ingest, organs, parse_reports, pretrain, segment, synth, zeroshot
from ctglip_cli.common import exit_for


class _App(typer.Typer):
    """Typer app whose errors outside a command's ``fail_fast`` still exit 2 (user) or 3 (bug)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - typer exits via SystemExit, never lands here
            raise SystemExit(exit_for(error).exit_code) from error


app = _App(
    help="ctglip: grounded language-image pretraining on CT scans and radiology reports (CT-GLIP).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("organs")(organs.command)
app.command("ingest")(ingest.command)
app.command("segment")(segment.command)
app.command("cache")(cache.command)
app.command("zeroshot")(zeroshot.command)
app.command("pretrain")(pretrain.command)
app.command("synth")(synth.command)
app.command("parse-reports")(parse_reports.command)
