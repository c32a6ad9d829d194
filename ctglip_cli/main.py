"""The ``ctglip`` console script: one subcommand per stage."""
from __future__ import annotations

import os

# Idle OpenMP threads spin by default; on a shared CPU that made training ~5x slower.
# Must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402

from ctglip_cli import cache, ingest, organs, parse_reports, pretrain, segment, synth, zeroshot

app = typer.Typer(
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
