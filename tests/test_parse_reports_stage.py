"""``ctglip parse-reports`` end to end: input layouts, outputs, errors, workers, the CLI layer."""
from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from ctglip_cli import parse_reports as cli
from stages.common.errors import SetupError
from stages.common.manifest import ManifestError, read_manifest, write_manifest
from stages.common.outputs import STAGE_MARKER
from stages.parse_reports import ParseReportsConfig, read_abnormality_dictionary, read_organ_texts, run
from stages.parse_reports.io import ReportsInputError

CT_RATE_ROWS = [
    {"VolumeName": "valid_1_a_1.nii.gz", "Findings_EN": "Millimetric nodules are observed in both lungs. "
     "No pleural or pericardial effusion was detected. Calcific atheroma plaques in the aorta.",
     "Impressions_EN": "Pulmonary nodules. Aortic atherosclerosis."},
    {"VolumeName": "valid_1_a_2.nii.gz", "Findings_EN": "Heart size increased. Liver parenchyma density decreased, "
     "consistent with hepatosteatosis.", "Impressions_EN": "Cardiomegaly. Hepatosteatosis."},
    {"VolumeName": "valid_2_a_1.nii.gz", "Findings_EN": None, "Impressions_EN": "  "},
]


def _write_ct_rate(path: Path, rows=CT_RATE_ROWS) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_ct_rate_csv(tmp_path):
    result = run(ParseReportsConfig(reports=_write_ct_rate(tmp_path / "reports.csv"), out_dir=tmp_path / "out"))
    assert result.counts() == {"ok": 2, "done-earlier": 0, "empty": 1, "failed": 0} and result.exit_code == 0
    texts = read_organ_texts(tmp_path / "out")
    assert list(texts.columns[:6]) == ["scan_id", "organ", "text", "abnormal", "uncertain", "abnormalities"]
    first = texts[texts.scan_id == "valid_1_a_1"].set_index("organ")
    assert first.loc["lung_left", "abnormalities"] == ["nodule"] and first.loc["lung_left", "abnormal"]
    assert not first.loc["heart", "abnormal"] and first.loc["heart", "negated_abnormalities"] == ["pericardial effusion"]
    assert first.loc["aorta", "text"] == "Calcific atheroma plaques in the aorta. Aortic atherosclerosis."
    dictionary = read_abnormality_dictionary(tmp_path / "out")
    assert dictionary["heart"] == {"cardiomegaly": 1} and dictionary["liver"] == {"steatosis": 1}
    assert dictionary["aorta"] == {"atherosclerosis": 1, "calcification": 1}
    manifest = read_manifest(tmp_path / "out", "parse-reports")
    assert manifest["items"]["valid_2_a_1"] == {"status": "empty", "seconds": 0.0,
                                                "error": "empty report: no findings or impression text"}
    assert manifest["counts"]["empty"] == 1 and manifest["inputs"]["columns"]["findings"] == "Findings_EN"
    assert (tmp_path / "out" / "abnormality_dictionary.png").stat().st_size > 10_000
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != STAGE_MARKER) == [
        "abnormality_dictionary.json", "abnormality_dictionary.png", "manifest.json", "organ_texts.parquet",
        "unassigned_sentences.csv"]


def test_generic_layouts_give_the_same_rows(tmp_path):
    generic = [{"scan_id": r["VolumeName"][:-7], "findings": r["Findings_EN"], "impression": r["Impressions_EN"]}
               for r in CT_RATE_ROWS[:2]]
    pd.DataFrame(generic).to_parquet(tmp_path / "generic.parquet")
    with (tmp_path / "reports.jsonl").open("w") as handle:
        for row in generic:
            handle.write(json.dumps({"scan_id": row["scan_id"], "report": f"INDICATION: cough.\nFINDINGS: "
                                     f"{row['findings']}\nIMPRESSION: {row['impression']}"}) + "\n")
    run(ParseReportsConfig(reports=tmp_path / "generic.parquet", out_dir=tmp_path / "a"))
    run(ParseReportsConfig(reports=tmp_path / "reports.jsonl", out_dir=tmp_path / "b"))
    run(ParseReportsConfig(reports=_write_ct_rate(tmp_path / "ct.csv", CT_RATE_ROWS[:2]), out_dir=tmp_path / "c"))
    frames = [read_organ_texts(tmp_path / name).drop(columns="text") for name in ("a", "b", "c")]
    assert frames[0].equals(frames[1]) and frames[0].equals(frames[2])


def test_missing_column_lists_existing_ones(tmp_path):
    pd.DataFrame([{"id": "a", "notes": "x"}]).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ReportsInputError, match=r"r.csv: no id column .* the columns are: id, notes"):
        run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out"))
    with pytest.raises(ReportsInputError, match=r"--findings-column 'Findings' is not a column; the columns are: id"):
        run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out", id_column="id",
                               findings_column="Findings"))
    result = run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out", id_column="id",
                                    text_column="notes"))
    assert result.counts()["ok"] == 1


def test_duplicate_ids_stop_unless_merged(tmp_path):
    rows = [{"scan_id": "a", "findings": "Emphysema.", "impression": ""},
            {"scan_id": "a.nii.gz", "findings": "Small hiatal hernia.", "impression": "Emphysema."}]
    pd.DataFrame(rows).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ReportsInputError, match=r"duplicate scan ids: a \(rows 1, 2\); pass --merge-duplicates"):
        run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out", merge_duplicates=True))
    assert set(read_organ_texts(tmp_path / "out").organ) == {"lung_left", "lung_right", "esophagus", "stomach"}


def test_bad_ids_fail_alone_and_never_write_outside(tmp_path):
    rows = [{"scan_id": "../../escape", "findings": "Emphysema."}, {"scan_id": "ok_1", "findings": "Emphysema."}]
    pd.DataFrame(rows).to_csv(tmp_path / "r.csv", index=False)
    result = run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "out"))
    assert result.exit_code == 1 and [item.item_id for item in result.failed] == ["row 1"]
    assert "r.csv row 1: scan id '../../escape' is not allowed" in result.failed[0].error
    assert set(read_organ_texts(tmp_path / "out").scan_id) == {"ok_1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r.csv"]


def test_refuses_another_stages_folder_and_readers_check_the_manifest(tmp_path):
    other = tmp_path / "seg"
    other.mkdir()
    write_manifest(other, "segment", {"x": 1}, [], {})
    _write_ct_rate(tmp_path / "r.csv")
    with pytest.raises(SetupError, match="holds the output of `ctglip segment`"):
        run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=other))
    with pytest.raises(ManifestError, match="ctglip parse-reports"):
        read_organ_texts(other)
    with pytest.raises(ManifestError, match="run it first"):
        read_abnormality_dictionary(tmp_path)


def test_unreadable_and_unknown_tables(tmp_path):
    (tmp_path / "r.xlsx").write_text("x")
    with pytest.raises(ReportsInputError, match=r"r.xlsx: unknown table type '.xlsx'"):
        run(ParseReportsConfig(reports=tmp_path / "r.xlsx", out_dir=tmp_path / "out"))
    (tmp_path / "r.parquet").write_bytes(b"not parquet")
    with pytest.raises(ReportsInputError, match=r"r.parquet: cannot read the reports table"):
        run(ParseReportsConfig(reports=tmp_path / "r.parquet", out_dir=tmp_path / "out"))
    with pytest.raises(SetupError, match="missing.csv: reports file not found"):
        run(ParseReportsConfig(reports=tmp_path / "missing.csv", out_dir=tmp_path / "out"))


def test_two_workers_match_one(tmp_path):
    rows = [{"scan_id": f"s{i}", "findings": row["Findings_EN"], "impression": row["Impressions_EN"]}
            for i, row in enumerate(CT_RATE_ROWS[:2] * 6)]
    pd.DataFrame(rows).to_csv(tmp_path / "r.csv", index=False)
    run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "one"))
    result = run(ParseReportsConfig(reports=tmp_path / "r.csv", out_dir=tmp_path / "two", workers=2))
    assert result.counts()["ok"] == 12
    assert read_organ_texts(tmp_path / "one").equals(read_organ_texts(tmp_path / "two"))


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(cli.command)
    return app


def test_cli_exit_codes(tmp_path):
    runner = CliRunner()
    _write_ct_rate(tmp_path / "r.csv")
    ok = runner.invoke(_app(), [str(tmp_path / "r.csv"), "-o", str(tmp_path / "out"), "--workers", "1"])
    assert ok.exit_code == 0, ok.output
    pd.DataFrame([{"scan_id": "bad/id", "findings": "Emphysema."}]).to_csv(tmp_path / "bad.csv", index=False)
    some_failed = runner.invoke(_app(), [str(tmp_path / "bad.csv"), "-o", str(tmp_path / "out2")])
    assert some_failed.exit_code == 1
    cannot_start = runner.invoke(_app(), [str(tmp_path / "r.csv"), "-o", str(tmp_path / "out3"), "--id-column", "nope"])
    assert cannot_start.exit_code == 2 and "'nope' is not a column" in cannot_start.output
    bad_workers = runner.invoke(_app(), [str(tmp_path / "r.csv"), "-o", str(tmp_path / "out4"), "--workers", "0"])
    assert bad_workers.exit_code == 2 and "--workers must be at least 1" in bad_workers.output


def test_every_cli_option_is_a_config_field():
    options = set(inspect.signature(cli.command).parameters) - {"reports", "output"}
    fields = {field.name for field in dataclasses.fields(ParseReportsConfig)} - {"reports", "out_dir"}
    assert options == fields
