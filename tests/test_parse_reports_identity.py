"""The parser's whole output is pinned: both development sets and 200 ``ctglip synth`` reports.

Speed work must not change a single row. The expected outputs live in ``report_parse_expected.jsonl``
(one line per report, keyed by a hash of its text); the synth reports are generated here with a fixed
seed. When a change is *meant* to alter the output (new vocabulary, new grounding rules), regenerate the
file with ``python tests/test_parse_reports_identity.py`` and review its diff: it shows every changed row.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"
EXPECTED = DATA / "report_parse_expected.jsonl"
DEV_SETS = ("report_dev_set.jsonl", "report_dev_set.holdout.jsonl")
SYNTH_REPORTS = 200


def _key(findings: str, impression: str) -> str:
    return hashlib.sha256(json.dumps([findings, impression]).encode("utf-8")).hexdigest()[:20]


def _dev_reports() -> list[tuple[str, str]]:
    return [(json.loads(line)["text"], "") for name in DEV_SETS
            for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _synth_reports(folder: Path) -> list[tuple[str, str]]:
    from stages.synth import SynthConfig, read_dataset
    from stages.synth import run as synth_run
    synth_run(SynthConfig(out_dir=folder, n_scans=SYNTH_REPORTS, seed=7, shape=(24, 24, 16),
                          spacing=(10.0, 10.0, 10.0), prevalence=0.5, omit_fraction=0.0, preview=False))
    reports = read_dataset(folder).reports
    return [(row.findings if isinstance(row.findings, str) else "", row.impression if isinstance(row.impression, str)
             else "") for row in reports.itertuples()]


def _outputs(reports: list[tuple[str, str]]) -> dict[str, dict]:
    """What the stage writes for each report: its organ rows and unassigned sentences."""
    from stages.parse_reports import ReportParser
    from stages.parse_reports.io import ReportRecord
    from stages.parse_reports.stage import parse_records
    parser = ReportParser()
    outputs = {}
    records = [ReportRecord(scan_id="x", row=1, findings=findings, impression=impression)
               for findings, impression in reports]
    for (findings, impression), outcome in zip(reports, parse_records(parser, records), strict=True):
        outputs[_key(findings, impression)] = {"status": outcome.status, "error": outcome.error,
                                               "rows": outcome.rows, "unassigned": outcome.unassigned}
    return outputs


def _expected() -> dict[str, dict]:
    lines = EXPECTED.read_text(encoding="utf-8").splitlines()
    return {item.pop("key"): item for item in map(json.loads, lines)}


def test_dev_set_outputs_are_unchanged():
    expected = _expected()
    for key, output in _outputs(_dev_reports()).items():
        assert output == expected[key], key


def test_synth_report_outputs_are_unchanged(tmp_path):
    reports = _synth_reports(tmp_path / "synth")
    expected = _expected()
    missing = [key for key in map(lambda r: _key(*r), reports) if key not in expected]
    assert not missing, (f"{len(missing)} synth reports have no stored output: the synth generator changed; "
                         "regenerate with `python tests/test_parse_reports_identity.py`")
    for key, output in _outputs(reports).items():
        assert output == expected[key], key


def main(folder: Path) -> None:
    """Rewrite the expected outputs from the current parser."""
    outputs = _outputs(_dev_reports() + _synth_reports(folder / "synth"))
    EXPECTED.write_text("".join(json.dumps({"key": key, **output}, ensure_ascii=False, separators=(",", ":")) + "\n"
                                for key, output in outputs.items()), encoding="utf-8")
    print(f"{EXPECTED}: {len(outputs)} reports")


if __name__ == "__main__":
    import tempfile
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as temporary:
        main(Path(temporary))
