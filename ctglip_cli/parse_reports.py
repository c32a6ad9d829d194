"""``ctglip parse-reports``: CLI over :func:`stages.parse_reports.run`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctglip_cli.common import fail_fast, finish, rich_progress


def command(
    reports: Annotated[Path, typer.Argument(help="Reports table: .csv, .tsv, .parquet or .jsonl (CT-RATE or generic "
                                                 "layout).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for organ_texts.parquet, "
                                         "abnormality_dictionary.json, unassigned_sentences.csv, manifest.json.")],
    id_column: Annotated[str | None, typer.Option(help="Column with the scan id (default: VolumeName or scan_id; "
                                                       "a .nii.gz/.nii suffix is dropped).")] = None,
    findings_column: Annotated[str | None, typer.Option(help="Column with the FINDINGS text (default: Findings_EN "
                                                             "or findings).")] = None,
    impression_column: Annotated[str | None, typer.Option(help="Column with the IMPRESSION text (default: "
                                                               "Impressions_EN or impression).")] = None,
    text_column: Annotated[str | None, typer.Option(help="One column holding the whole report with FINDINGS:/"
                                                         "IMPRESSION: headers (default: report).")] = None,
    merge_duplicates: Annotated[bool, typer.Option(help="Join the reports of rows that share a scan id instead of "
                                                        "stopping.")] = False,
    workers: Annotated[int, typer.Option(help="Processes parsing in parallel.")] = 1,
    lexicon_dir: Annotated[Path | None, typer.Option(help="A copy of stages/parse_reports/lexicon/ with your own "
                                                          "terms.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of a .csv/.tsv/.jsonl reports file (e.g. cp1252, "
                                               "latin-1).")] = "utf-8",
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier parse-reports output in the folder.")] = False,
) -> None:
    """Ground report sentences to organs, flag abnormal/uncertain findings, build the abnormality dictionary."""
    from stages.parse_reports import ParseReportsConfig, run

    config = fail_fast(lambda: ParseReportsConfig(
        reports=reports, out_dir=output, id_column=id_column, findings_column=findings_column,
        impression_column=impression_column, text_column=text_column, merge_duplicates=merge_duplicates,
        workers=workers, lexicon_dir=lexicon_dir, encoding=encoding, overwrite=overwrite))
    with rich_progress() as progress:
        result = fail_fast(lambda: run(config, progress))
    finish(result)
