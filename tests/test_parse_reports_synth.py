"""parse-reports reads what ``ctglip synth`` writes: its reports.csv, checked against its labels.csv.

The synth generator is run here (a few tiny scans), so the test never skips. With
``omit_fraction=0`` every true finding is reported, so the parser's affirmed phrases must match
the image truth of the shared label space.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from stages.parse_reports import ParseReportsConfig, read_abnormality_dictionary, read_organ_texts, run
from stages.synth import SynthConfig, read_dataset
from stages.synth import run as synth_run


def test_parse_reports_reads_synth_reports(tmp_path: Path):
    synth = tmp_path / "synth"
    synth_run(SynthConfig(out_dir=synth, n_scans=12, seed=4, shape=(24, 24, 16), spacing=(10.0, 10.0, 10.0),
                          prevalence=0.5, omit_fraction=0.0, preview=False))
    dataset = read_dataset(synth)
    result = run(ParseReportsConfig(reports=synth / "reports.csv", out_dir=tmp_path / "parsed"))
    assert result.counts() == {"ok": 12, "done-earlier": 0, "empty": 0, "failed": 0}
    rows = read_organ_texts(tmp_path / "parsed")
    stated = {(row.scan_id, row.organ, phrase) for row in rows.itertuples() for phrase in row.abnormalities}
    labels: pd.DataFrame = dataset.labels
    truth = {(row.scan_id, row.organ, row.abnormality) for row in labels.itertuples() if row.present}
    in_space = {(s, o, p) for s, o, p in stated if (o, p) in set(zip(labels.organ, labels.abnormality))}
    assert truth, "the synthetic set should contain abnormal scans"
    true_positive = len(truth & in_space)
    assert true_positive / len(in_space) >= 0.95 and true_positive / len(truth) >= 0.95, (
        sorted(truth - in_space), sorted(in_space - truth))
    dictionary = read_abnormality_dictionary(tmp_path / "parsed")
    per_pair = Counter((organ, phrase) for _, organ, phrase in stated)
    assert {(organ, phrase): count for organ, phrases in dictionary.items()
            for phrase, count in phrases.items()} == dict(per_pair)
    for organ, phrase in {(o, p) for _, o, p in truth}:
        assert dictionary[organ][phrase] >= 1
