"""Bad and odd report inputs: markup, other languages, encodings, empty tables, spreadsheet formulas, reruns."""
from __future__ import annotations

import csv

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from ctglip_cli import parse_reports as cli
from stages.common.errors import SetupError
from stages.common.manifest import read_manifest
from stages.common.spreadsheet import spreadsheet_safe
from stages.parse_reports import ParseReportsConfig, ReportParser, read_organ_texts, run
from stages.parse_reports.io import ReportsInputError
from stages.parse_reports.markup import strip_markup
from stages.parse_reports.readable import UnreadableReport

PLAIN = "FINDINGS:\nLiver: 2 cm hypodense lesion.\n- No pleural effusion.\n- Mild cardiomegaly.\nIMPRESSION:\nLiver lesion."
TURKISH = ("Trakea ve her iki ana bronş açık. Mediastende patolojik boyutta lenf nodu saptanmadı. Kalp boyutları "
           "normal. Her iki akciğerde milimetrik nodüller izlendi.")


@pytest.fixture(scope="module")
def parser() -> ReportParser:
    return ReportParser()


def _states(report) -> dict[str, tuple[bool, list[str]]]:
    return {organ: (r.abnormal, r.abnormalities) for organ, r in report.organs.items()}


@pytest.mark.parametrize("wrapped", [
    "<html><body><h2>FINDINGS:</h2><p>Liver: 2&nbsp;cm <b>hypodense</b> lesion.</p><ul><li>No pleural effusion.</li>"
    "<li>Mild <i>cardiomegaly</i>.</li></ul><h2>IMPRESSION:</h2><p>Liver lesion.</p></body></html>",
    "## FINDINGS:\n**Liver:** 2 cm *hypodense* lesion.\n* No pleural effusion.\n+ Mild __cardiomegaly__.\n"
    "## IMPRESSION:\n`Liver lesion.`",
])
def test_html_and_markdown_parse_like_the_plain_report(parser, wrapped):
    assert _states(parser.parse(text=wrapped)) == _states(parser.parse(text=PLAIN))
    assert parser.parse(text=wrapped).organs["heart"].abnormalities == ["cardiomegaly"]


def test_plain_text_is_left_as_it_is():
    text = "A 2.3 x 1.8 cm lesion; T1-T2 disc; 5*3 mm; snake_case; a < b and c > d; R&D.\n\n- Heart normal"
    assert strip_markup(text) == text


def test_another_language_is_refused_not_read_as_normal(parser):
    with pytest.raises(UnreadableReport, match=r"only \d+% of its \d+ words"):
        parser.parse(findings=TURKISH)
    assert parser.parse(findings="Cholelithiasis.").organs["gallbladder"].abnormal  # short texts pass


def test_unreadable_report_fails_alone_with_its_row(tmp_path):
    rows = [{"scan_id": "tr", "findings": TURKISH}, {"scan_id": "en", "findings": "Millimetric nodules in both lungs."}]
    pd.DataFrame(rows).to_csv(tmp_path / "r.csv", index=False)
    result = run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out"))
    assert result.exit_code == 1 and [item.item_id for item in result.failed] == ["tr"]
    assert result.failed[0].error.startswith("row 1: not read: only")
    assert set(read_organ_texts(tmp_path / "out").scan_id) == {"en"}


def test_bad_bytes_name_the_row_and_encoding_option_reads_them(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"scan_id,findings\na,Liver normal.\nb,Caf\xe9 mild cardiomegaly.\n")
    with pytest.raises(ReportsInputError, match=r"r.csv: row 2 is not valid utf-8 text \(byte 0xe9\); pass --encoding"):
        run(ParseReportsConfig(reports=path, out_dir=tmp_path / "out"))
    result = run(ParseReportsConfig(reports=path, out_dir=tmp_path / "out", encoding="cp1252"))
    assert result.counts()["ok"] == 2
    with pytest.raises(ReportsInputError, match="--encoding 'utf-99' is not a known text encoding"):
        run(ParseReportsConfig(reports=path, out_dir=tmp_path / "out2", encoding="utf-99"))


def test_header_only_table_is_refused(tmp_path):
    (tmp_path / "r.csv").write_text("scan_id,findings,impression\n")
    with pytest.raises(ReportsInputError, match=r"r.csv: no reports \(the table has 3 column\(s\) but no rows\)"):
        run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out"))
    app = typer.Typer()
    app.command()(cli.command)
    result = CliRunner().invoke(app, [str(tmp_path / "r.csv"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "but no rows" in " ".join(result.output.split()) and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("lines", "problem"), [
    ('{"scan_id": "a", "findings": "Liver normal."}\n{"scan_id": "b", "findings": \n', "line 2 is not a JSON object"),
    ('{"scan_id": "a", "findings": "Liver normal."}\n\n[1, 2]\n', "line 3 is not a JSON object"),
])
def test_a_broken_json_lines_file_names_its_line(tmp_path, lines, problem):
    (tmp_path / "r.jsonl").write_text(lines)
    with pytest.raises(ReportsInputError, match=f"r.jsonl: cannot read the reports table: {problem}"):
        run(ParseReportsConfig(reports=tmp_path / "r.jsonl", out_dir=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_rerun_with_other_inputs_needs_overwrite(tmp_path):
    pd.DataFrame([{"scan_id": "a", "findings": "Emphysema."}]).to_csv(tmp_path / "r.csv", index=False)
    run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out"))
    run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out", workers=2))  # same output: allowed
    with pytest.raises(SetupError, match=r"made with other inputs \(merge_duplicates differ\); pass --overwrite"):
        run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out", merge_duplicates=True))
    pd.DataFrame([{"scan_id": "b", "findings": "Cardiomegaly."}]).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(SetupError, match=r"\(reports file content differ\); pass --overwrite"):
        run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out"))
    assert set(read_organ_texts(tmp_path / "out").scan_id) == {"a"}
    run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out", overwrite=True))
    assert set(read_organ_texts(tmp_path / "out").scan_id) == {"b"}


def test_empty_report_is_empty_not_skipped(tmp_path):
    pd.DataFrame([{"scan_id": "a", "findings": " "}, {"scan_id": "b", "findings": "Emphysema."}]).to_csv(
        tmp_path / "r.csv", index=False)
    result = run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out"))
    assert result.counts()["empty"] == 1 and result.counts()["done-earlier"] == 0 and result.exit_code == 0
    assert read_manifest(tmp_path / "out", "parse-reports")["items"]["a"]["status"] == "empty"


@pytest.mark.parametrize(("cell", "safe"), [("=SUM(A1:A9)", "'=SUM(A1:A9)"), ("@cmd", "'@cmd"), ("-2+3", "'-2+3"),
                                            ("+1", "'+1"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("Liver = 2 cm", "Liver = 2 cm"),
                                            (3, 3)])
def test_spreadsheet_cells_never_start_a_formula(cell, safe):
    assert spreadsheet_safe(cell) == safe


def test_unassigned_sentences_csv_escapes_formulas(tmp_path):
    findings = "=SUM(1+2) was typed here. @cmd no lymphadenopathy. -2+3 mediastinal nodes. Emphysema."
    pd.DataFrame([{"scan_id": "a", "findings": findings}]).to_csv(tmp_path / "r.csv", index=False)
    run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out"))
    with (tmp_path / "out" / "unassigned_sentences.csv").open(newline="", encoding="utf-8") as handle:
        sentences = [row["sentence"] for row in csv.DictReader(handle)]
    assert sentences and all(not s.startswith(("=", "+", "-", "@")) for s in sentences)
    assert "'=SUM(1+2) was typed here." in sentences
