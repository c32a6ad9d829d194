"""The ``ctglip`` console script: one subcommand per stage."""
from __future__ import annotations

import typer

from ctglip_cli import zeroshot
from ctglip_cli import synth
from ctglip_cli import parse_reports
from ctglip_cli import pretrain
from ctglip_cli import cache, organs, segment

app = typer.Typer(
    help="ctglip: grounded language-image pretraining on CT scans and radiology reports (CT-GLIP).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("organs")(organs.command)
app.command("segment")(segment.command)
app.command("cache")(cache.command)
app.command("zeroshot")(zeroshot.command)
app.command("pretrain")(pretrain.command)
app.command("synth")(synth.command)
app.command("parse-reports")(parse_reports.command)
